import hashlib

import lightning.pytorch as pl
import pytest
import torch
import yaml

from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.trials.trial import LossCurve, run_trial


def _config(tmp_path, tune=None, model=None, data=None, overrides=()):
    cfg = {
        "model": model
        or {
            "class_path": "autoinit.templates.DeepMLP",
            "init_args": {"depth": 4, "width": 16, "in_features": 32, "classes": 4},
        },
        "data": data
        or {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 512, "classes": 4, "batch_size": 32}},
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {"steps": 12, "seeds": 2, **(tune or {})},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path, list(overrides))


class _Hashes(pl.Callback):
    seen: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        _Hashes.seen.append(hashlib.sha256(batch[0].numpy().tobytes()).hexdigest()[:12])


def test_curves_per_seed_and_same_data_order_for_every_trial(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    orders = []
    for scheme in ("default", "kaiming_normal", "lsuv"):
        _Hashes.seen = []
        monkeypatch.setattr(cfg, "trainer_kwargs", lambda c=cfg.trainer_kwargs: {**c(), "callbacks": [_Hashes()]})
        result = run_trial(cfg, scheme, 1.0)
        monkeypatch.undo()
        assert result.status == "complete" and [len(c) for c in result.curves] == [12, 12]
        orders.append(list(_Hashes.seen))
    assert orders[0] == orders[1] == orders[2]
    assert orders[0][:12] == orders[0][12:]  # seeds see the same data order too


def test_seeds_change_only_the_init(tmp_path):
    cfg = _config(tmp_path)
    a = run_trial(cfg, "kaiming_normal", 1.0)
    b = run_trial(cfg, "kaiming_normal", 1.0)
    assert a.curves == b.curves  # deterministic
    assert a.curves[0] != a.curves[1]  # two init seeds


def test_divergence_stops_at_once(tmp_path):
    cfg = _config(
        tmp_path,
        model={
            "class_path": "autoinit.templates.DeepMLP",
            "init_args": {"depth": 8, "width": 16, "in_features": 32, "classes": 4, "activation": "linear", "lr": 0.5},
        },
    )
    result = run_trial(cfg, "orthogonal", 30.0)
    assert result.status == "diverged"
    assert len(result.curves) == 1 and len(result.curves[0]) < 12


def test_pruner_report_stops_the_trial(tmp_path):
    cfg = _config(tmp_path, tune={"report_every": 3})
    calls = []

    def report(step, value):
        calls.append(step)
        return step >= 6

    result = run_trial(cfg, "default", 1.0, report=report)
    assert result.status == "pruned" and calls == [3, 6] and len(result.curves[0]) == 6


class _Lr(pl.Callback):
    seen: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        _Lr.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_lr_scale_scales_the_optimizer_learning_rate(tmp_path, monkeypatch):
    cfg = _config(tmp_path, tune={"seeds": 1})
    monkeypatch.setattr(cfg, "trainer_kwargs", lambda c=cfg.trainer_kwargs: {**c(), "callbacks": [_Lr()]})
    _Lr.seen = []
    base = run_trial(cfg, "kaiming_normal", 1.0)
    scaled = run_trial(cfg, "kaiming_normal", 1.0, lr_scale=0.25)
    assert set(_Lr.seen) == {0.01, 0.0025}  # DeepMLP's SGD lr 0.01, then × 0.25
    assert scaled.curves[0][0] == base.curves[0][0] and scaled.curves[0][5] != base.curves[0][5]


def test_missing_metric_is_named(tmp_path):
    cfg = _config(tmp_path, tune={"metric": "train_acc"})
    with pytest.raises(KeyError, match="metric 'train_acc' was not logged"):
        run_trial(cfg, "default", 1.0)


def test_loss_curve_records_values():
    curve = LossCurve(None, 0, 5, None, [])
    assert curve.values == [] and not curve.diverged


def _curve_and_reports(cfg, **kwargs):
    reported = []
    result = run_trial(cfg, "kaiming_normal", 1.0, report=lambda step, v: reported.append(step) or False, **kwargs)
    return result, reported


@pytest.mark.parametrize(
    "trainer",
    [
        {"accumulate_grad_batches": 2},  # with half the batch size: the same samples per optimizer step
        {"precision": "bf16-mixed"},
        {"gradient_clip_val": 1e6},  # clipping that never bites: the same curve
    ],
    ids=["accumulate", "bf16-mixed", "clip"],
)
def test_scores_mean_the_same_under_trainer_settings(tmp_path, trainer):
    """Steps are optimizer steps, the loss is the per-sample loss (mean over a step's micro-batches), each
    seed reports on its own step range — whatever the trainer section says."""
    plain, plain_reports = _curve_and_reports(_config(tmp_path, tune={"report_every": 4}))
    half = 16 if "accumulate_grad_batches" in trainer else 32
    path = tmp_path / "cfg.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["trainer"].update(trainer)
    cfg["data"]["init_args"]["batch_size"] = half
    path.write_text(yaml.safe_dump(cfg))
    other, other_reports = _curve_and_reports(TuneConfig(path))
    assert [len(c) for c in other.curves] == [len(c) for c in plain.curves] == [12, 12]
    assert other_reports == plain_reports == [4, 8, 12, 16, 20, 24]  # seed 1 on steps 13..24
    for a, b in zip(other.curves, plain.curves, strict=True):
        assert a == pytest.approx(b, rel=0.02)
    assert 1.0 < sum(plain.curves[0]) / 12 < 2.0  # ln(4) ≈ 1.39 at the start: the level is the loss itself


def test_training_step_returning_none_is_one_line(tmp_path):
    from autoinit import AutoInitError

    cfg = _config(
        tmp_path,
        model={"class_path": "userland.ResidualDictNet", "init_args": {"mode": "none"}},
        data={"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "d")}},
    )
    with pytest.raises(AutoInitError, match=r"ResidualDictNet.training_step returned None: it must return the loss"):
        run_trial(cfg, "default", 1.0)


def test_dict_batches_reach_autoinit_through_tune_batch_to_input(tmp_path):
    cfg = _config(
        tmp_path,
        tune={"batch_to_input": "userland.to_input", "seeds": 1},
        model={"class_path": "userland.ResidualDictNet", "init_args": {"input_key": "features"}},
        data={"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "d"), "input_key": "features"}},
    )
    # LSUV needs the batch's input: without tune.batch_to_input it could not find it under "features"
    result = run_trial(cfg, "lsuv", 1.0)
    assert result.status == "complete" and len(result.curves[0]) == 12


def test_prepare_data_runs_once_per_process_setup_on_every_build(tmp_path):
    root = tmp_path / "mnist"
    cfg = _config(
        tmp_path,
        model={"class_path": "userland.ResidualDictNet"},
        data={"class_path": "userland.FileData", "init_args": {"root": str(root)}},
    )
    run_trial(cfg, "default", 1.0)
    run_trial(cfg, "kaiming_normal", 1.0)  # 2 trials × 2 seeds: four fits, four fresh datamodules
    assert (root / "prepare_calls").read_text().count("\n") == 1


def test_no_batch_at_all_is_one_line(tmp_path):
    from autoinit import AutoInitError

    cfg = _config(
        tmp_path,
        data={"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 8, "classes": 4, "batch_size": 32}},
    )
    with pytest.raises(AutoInitError, match="yields no batch"):
        run_trial(cfg, "default", 1.0)


def test_a_small_sequential_step_trains_on_one_thread_and_the_thread_count_is_restored(tmp_path, monkeypatch):
    # a small GRU's sequential trial ran 50x slower on 2 threads than on 1 on a busy 2-core machine
    import torch

    from autoinit import templates
    from autoinit.tuner.common import threads

    seen = []
    real = templates.DeepMLP.forward

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(templates.DeepMLP, "forward", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = _config(tmp_path, tune={"steps": 3, "seeds": 2})
        small = run_trial(cfg, "kaiming_normal", 1.0)
        assert seen[-3:] == [1, 1, 1] and seen.count(1) == 6  # 3 steps × 2 seeds; AutoInit's trace before them
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(threads, "ONE_THREAD_BELOW_FLOPS", 0.0)  # a large step keeps its threads
        seen.clear()
        large = run_trial(cfg, "kaiming_normal", 1.0)
        assert set(seen) == {2} and torch.get_num_threads() == 2
        # the rule changes the thread count, not what is measured
        for a, b in zip(small.curves, large.curves, strict=True):
            assert a == pytest.approx(b, rel=1e-5)
    finally:
        torch.set_num_threads(before)


def test_the_models_own_init_varies_by_seed_and_reproduces(tmp_path, monkeypatch):
    """as_built trains the model as its constructor drew it (from the global RNG): seed k builds it under
    seed k, so two runs give the same curves, two seeds different ones, and the data order stays fixed."""
    from autoinit.tuner.sources.source import build_for_seed

    cfg = _config(tmp_path)
    a, b = build_for_seed(cfg, 0)[0], build_for_seed(cfg, 0)[0]
    c = build_for_seed(cfg, 1)[0]
    first = next(iter(a.state_dict()))
    assert torch.equal(a.state_dict()[first], b.state_dict()[first])
    assert not torch.equal(a.state_dict()[first], c.state_dict()[first])

    _Hashes.seen = []
    monkeypatch.setattr(cfg, "trainer_kwargs", lambda c=cfg.trainer_kwargs: {**c(), "callbacks": [_Hashes()]})
    one = run_trial(cfg, "as_built", 1.0)
    order = list(_Hashes.seen)
    two = run_trial(cfg, "as_built", 1.0)
    assert one.curves == two.curves and one.curves[0] != one.curves[1]
    assert order[:12] == order[12:]  # both seeds see the same batches


def test_pruner_reporter_sends_each_value_to_the_pruner_and_returns_its_answer():
    import optuna

    from autoinit.tuner.trials.trial import pruner_reporter

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    trial = study.ask()
    report = pruner_reporter(trial)
    assert report(1, 0.5) is False
    assert report(2, 5.0) is True
    assert study.trials[0].intermediate_values == {1: 0.5, 2: 5.0}
