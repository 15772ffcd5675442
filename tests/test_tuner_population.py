"""Population trials: the exactness contract against sequential trials, the fallback probe, per-member
control (divergence, lr_scale, pruning), memory halving, and the Optuna integration."""

from __future__ import annotations

import math
import warnings

import lightning.pytorch as pl
import optuna
import pytest
import torch
import yaml
from torch import nn

from autoinit.errors import AutoInitError
from autoinit.tuner.population import trials as population_trials
from autoinit.tuner.population.engine import Member, PopulationFailed, train_population
from autoinit.tuner.population.trials import member_bytes, probe, run_population_trials
from autoinit.tuner.records.record import TrialRecord
from autoinit.tuner.search.space import Point
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.settings import TuneSettings
from autoinit.tuner.trials.trial import run_trial

# Short trials on small models: the contract is per step, so a few steps check it (the whole file runs in
# well under a minute on an idle 2-core machine).
STEPS = 8


def _rel(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))


def _cfg(path: str, *overrides: str, seeds: int = 2) -> TuneConfig:
    return TuneConfig(path, ["--trainer.accelerator=cpu", f"--tune.steps={STEPS}", f"--tune.seeds={seeds}", *overrides])


# The bundled ReLU MLP, CNN and Transformer templates as they ship (the CReLU, tanh and linear MLPs run the
# same engine; the LSTM falls back, below).
TEMPLATES = {
    "relu_mlp": ("configs/quickstart.yaml",),
    "cnn": ("configs/cnn_digits.yaml",),
    "transformer": ("configs/transformer.yaml",),  # Adam from the CLI's optimizer section, gradient clipping
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_member_curve_equals_sequential_trial_on_the_templates(name):
    cfg = _cfg(*TEMPLATES[name], seeds=1)
    members = [Member(scheme="kaiming_normal", gain=1.0, seed=0), Member(scheme="orthogonal", gain=1.0, seed=0)]
    sequential = run_trial(cfg, "kaiming_normal", 1.0)
    assert sequential.status == "complete"
    out = train_population(cfg, members)
    assert [len(o.curve) for o in out] == [STEPS] * 2
    assert _rel(sequential.curves[0], out[0].curve) < 1e-4
    assert _rel(sequential.curves[0], out[1].curve) > 1e-3  # another init, another curve


# The Hugging Face templates (eager attention, LayerScale, GELU, tied head), over 20 steps; GPT-2 made
# smaller than its config to keep the file fast.
HF_TEMPLATES = {
    "hf_gpt2": ("configs/hf_gpt2.yaml", "--model.init_args.width=64", "--model.init_args.layers=2"),
    "hf_bert": ("configs/hf_bert.yaml",),
    "hf_vit": ("configs/hf_vit.yaml", "--model.init_args.layers=2"),
    "hf_convnext": ("configs/hf_convnext.yaml",),
}


@pytest.mark.parametrize("name", sorted(HF_TEMPLATES))
def test_member_curve_equals_sequential_trial_on_the_hf_templates(name):
    pytest.importorskip("transformers")
    path, *overrides = HF_TEMPLATES[name]
    cfg = TuneConfig(path, ["--trainer.accelerator=cpu", "--tune.steps=20", "--tune.seeds=1", *overrides])
    assert probe(cfg) is None
    sequential = run_trial(cfg, "xavier_uniform", 1.0)
    out = train_population(cfg, [Member(scheme="xavier_uniform", gain=1.0), Member(scheme="xavier_uniform", gain=0.5)])
    assert [len(o.curve) for o in out] == [20] * 2
    assert _rel(sequential.curves[0], out[0].curve) < 1e-4
    assert _rel(sequential.curves[0], out[1].curve) > 1e-3  # another gain, another curve


def test_lstm_template_falls_back_and_says_why():
    why = probe(_cfg("configs/lstm.yaml"))
    assert why is not None and "aten::lstm" in why and "cannot be vectorized over members" in why


def test_lsuv_and_lr_scale_members_equal_their_sequential_trials():
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=4", "--model.init_args.optimizer=adam", seeds=1)
    lsuv = run_trial(cfg, "lsuv", 1.2)  # data-dependent: sees the trial's first batch
    scaled = run_trial(cfg, "kaiming_normal", 1.0, lr_scale=2.5)
    out = train_population(
        cfg,
        [
            Member(scheme="lsuv", gain=1.2),
            Member(scheme="kaiming_normal", gain=1.0, lr_scale=2.5),
            Member(scheme="kaiming_normal", gain=1.0),
        ],
    )
    assert _rel(lsuv.curves[0], out[0].curve) < 1e-4
    assert _rel(scaled.curves[0], out[1].curve) < 1e-4
    assert _rel(out[2].curve, out[1].curve) > 1e-3  # lr_scale acts on its member only


def test_accumulated_micro_batches_equal_one_large_batch():
    # SGD on the mean loss: two micro-batches of 32 accumulated are one batch of 64 (the same permutation)
    small = _cfg(
        "configs/quickstart.yaml",
        "--model.init_args.depth=4",
        "--data.init_args.batch_size=32",
        "--trainer.accumulate_grad_batches=2",
        seeds=1,
    )
    large = _cfg("configs/quickstart.yaml", "--model.init_args.depth=4", "--data.init_args.batch_size=64", seeds=1)
    a = train_population(small, [Member(scheme="kaiming_normal", gain=1.0)])[0].curve
    b = train_population(large, [Member(scheme="kaiming_normal", gain=1.0)])[0].curve
    assert _rel(b, a) < 1e-4


def test_diverging_member_is_dropped_and_the_others_do_not_notice():
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=8", "--model.init_args.lr=0.5", seeds=1)
    alone = train_population(cfg, [Member(scheme="kaiming_normal", gain=1.0)])[0]
    out = train_population(cfg, [Member(scheme="kaiming_normal", gain=30.0), Member(scheme="kaiming_normal", gain=1.0)])
    assert out[0].diverged and not math.isfinite(out[0].curve[-1]) and len(out[0].curve) < STEPS
    assert not out[1].diverged and out[1].curve == alone.curve


def test_watch_stops_members_and_the_rest_train_on():
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=4", "--tune.report_every=2")
    alone = train_population(cfg, [Member(scheme="kaiming_normal", gain=1.0, seed=1)])[0]
    seen = []

    def watch(step, curves):
        seen.append((step, sorted(curves)))
        return {0} if step == 4 else set()

    out = train_population(
        cfg,
        [Member(scheme="kaiming_normal", gain=1.0, seed=0), Member(scheme="kaiming_normal", gain=1.0, seed=1)],
        watch=watch,
    )
    assert seen == [(2, [0, 1]), (4, [0, 1]), (6, [1]), (8, [1])]
    assert out[0].stopped and len(out[0].curve) == 4
    assert out[1].curve == alone.curve


class LoggedMetric(pl.LightningModule):
    """A residual net (BatchNorm, dropout) on dict batches, logging its own metric; reads the trainer."""

    def __init__(self, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Linear(8, width)
        self.block = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.head(h + self.block(h))

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch["x"]), batch["y"])
        self.log("twice", 2 * loss, on_step=True)
        self.log("epoch", float(self.trainer.current_epoch))
        return {"loss": loss}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)


class ItemNet(LoggedMetric):
    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch["x"]), batch["y"])
        if loss.item() > 100:  # data-dependent Python control flow
            return None
        return loss


class BranchNet(LoggedMetric):
    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch["x"]), batch["y"])
        return loss if loss > 0 else -loss  # a Python branch on a tensor's value


class LBFGSNet(LoggedMetric):
    def configure_optimizers(self):
        return torch.optim.LBFGS(self.parameters())


class AuthoredHead(LoggedMetric):
    """Its author chose the head's init (N(0, 0.02²)): ``auto`` keeps it."""

    def __init__(self) -> None:
        super().__init__()
        nn.init.normal_(self.head.weight, 0.0, 0.02)


class ManualNet(LoggedMetric):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False


def _user_config(tmp_path, model: str, tune: dict | None = None, trainer: dict | None = None) -> TuneConfig:
    cfg = {
        "model": {"class_path": f"test_tuner_population.{model}"},
        "data": {"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "data"), "n": 128}},
        "trainer": {"accelerator": "cpu", "devices": 1, **(trainer or {})},
        "tune": {"steps": STEPS, "seeds": 2, **(tune or {})},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path)


def test_logged_metric_batchnorm_dict_batches_and_value_clipping_equal_sequential(tmp_path):
    clip = {"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"}
    cfg = _user_config(tmp_path, "LoggedMetric", tune={"metric": "twice"}, trainer=clip)
    sequential = run_trial(cfg, "kaiming_normal", 1.0)
    out = train_population(
        cfg, [Member(scheme="kaiming_normal", gain=1.0), Member(scheme="kaiming_normal", gain=1.0, seed=1)]
    )
    assert _rel(sequential.curves[0], out[0].curve) < 1e-4
    assert _rel(sequential.curves[1], out[1].curve) < 1e-4


def test_a_member_after_another_of_its_seed_sees_the_model_as_built(tmp_path):
    # members of one seed share a working copy reset before each init: the author's-init test (auto keeps
    # the head) must read the build, not the copy an earlier member (kaiming) wrote
    cfg = _user_config(tmp_path, "AuthoredHead")
    alone = train_population(cfg, [Member(scheme="auto", gain=1.0)])[0].curve
    out = train_population(
        cfg,
        [Member(scheme="kaiming_normal", gain=1.0), Member(scheme="auto", gain=1.0), Member(scheme="auto", gain=1.0)],
    )
    assert _rel(alone, out[1].curve) < 1e-6 and _rel(alone, out[2].curve) < 1e-6
    assert _rel(alone, out[0].curve) > 1e-3


@pytest.mark.parametrize(
    ("model", "tune", "trainer", "expected"),
    [
        ("ItemNet", {}, {}, "the training step calls .item()"),
        ("BranchNet", {}, {}, "branches in Python on a tensor's value"),
        ("LBFGSNet", {}, {}, "not element-wise"),
        ("ManualNet", {}, {}, "manual optimization"),
        ("LoggedMetric", {"devices_per_trial": 2}, {}, "DDP"),
        ("LoggedMetric", {}, {"precision": "16-mixed"}, "precision"),
        (
            "LoggedMetric",
            {},
            {"callbacks": [{"class_path": "lightning.pytorch.callbacks.LearningRateFinder"}]},
            "callbacks",
        ),
    ],
)
def test_probe_names_why_a_config_runs_sequentially(tmp_path, model, tune, trainer, expected):
    why = probe(_user_config(tmp_path, model, tune, trainer))
    assert why is not None and expected in why


def test_probe_accepts_a_vectorizable_user_model(tmp_path):
    assert probe(_user_config(tmp_path, "LoggedMetric")) is None
    assert member_bytes(_user_config(tmp_path, "LoggedMetric")) > 5 * 4 * 16 * 16


def test_member_bytes_measures_a_logging_step_without_lightnings_no_trainer_warning(tmp_path):
    # the step runs with no trainer attached: Lightning's "self.trainer reference is not registered"
    # warning about every self.log reached the user's console on each tune
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert member_bytes(_user_config(tmp_path, "LoggedMetric")) > 5 * 4 * 16 * 16
    assert [str(w.message) for w in caught if "self.log" in str(w.message)] == []


def test_out_of_memory_halves_the_population_and_loses_nothing(monkeypatch):
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=2")
    real = population_trials.train_population
    sizes = []

    def limited(config, members, **kw):
        sizes.append(len(members))
        if len(members) > 2:
            raise PopulationFailed("CUDA out of memory", out_of_memory=True)
        return real(config, members, **kw)

    monkeypatch.setattr(population_trials, "train_population", limited)
    points = [Point("kaiming_normal", g) for g in (0.8, 1.0, 1.2)]
    results = run_population_trials(cfg, points, [None] * 3, max_members=6)
    assert sizes == [6, 2, 2, 2]  # 3 points of 2 seeds, then 1 point at a time
    assert [len(r.curves) for r in results] == [2, 2, 2]
    monkeypatch.setattr(population_trials, "train_population", real)
    assert results[1].curves == run_population_trials(cfg, points[1:2], [None])[0].curves


def test_a_member_whose_init_fails_fails_only_its_trial(monkeypatch):
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=2")
    from autoinit.tuner.population import engine as population

    real = population._initialize

    def flaky(model, member, *args):
        if member.gain == 0.9:
            raise AutoInitError("scheme failed for this gain")
        return real(model, member, *args)

    monkeypatch.setattr(population, "_initialize", flaky)
    results = run_population_trials(cfg, [Point("kaiming_normal", 0.9), Point("kaiming_normal", 1.0)], [None, None])
    assert isinstance(results[0], Exception) and "scheme failed" in str(results[0])
    assert len(results[1].curves) == 2


def test_reports_and_pruning_replay_the_sequential_trial():
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=2", "--tune.report_every=2")
    seq_reports, pop_reports = [], []

    def prune_at(log, at):
        def report(step, value):
            log.append((step, round(value, 5)))
            return step == at

        return report

    for at in (4, STEPS + 4):  # pruned in seed 0 (live), and in seed 1 (replayed)
        seq_reports.clear(), pop_reports.clear()
        sequential = run_trial(cfg, "kaiming_normal", 1.0, report=prune_at(seq_reports, at))
        result = run_population_trials(cfg, [Point("kaiming_normal", 1.0)], [prune_at(pop_reports, at)])[0]
        assert result.status == sequential.status == "pruned"
        assert pop_reports == seq_reports
        assert [len(c) for c in result.curves] == [len(c) for c in sequential.curves]


def test_settings_validate_population_keys():
    with pytest.raises(AutoInitError, match=r"tune\.population must be"):
        TuneSettings(population=0)
    with pytest.raises(AutoInitError, match="population_memory_fraction"):
        TuneSettings(population_memory_fraction=1.5)
    assert "population" in TuneSettings.resumable_keys()


def _tune(tmp_path, population, name, search=("--tune.n_trials=5", "--tune.search=tpe")):
    from rich.console import Console

    from autoinit.tuner.run import tune

    cfg = _cfg(
        "configs/quickstart.yaml",
        "--model.init_args.depth=4",
        *search,
        "--tune.schemes=[default,kaiming_normal,orthogonal]",
        f"--tune.population={population}",
        f"--tune.output={tmp_path / name}",
        "--tune.prescreen=false",
        seeds=1,
    )
    console = Console(record=True, width=200)
    assert tune(cfg, console=console) == 0
    study = optuna.load_study(
        study_name="quickstart",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / name / "study.journal"))
        ),
    )
    return study, console.export_text()


def test_study_with_population_trials_records_what_sequential_trials_record(tmp_path):
    pop, text = _tune(tmp_path, "auto", "pop")
    seq, seq_text = _tune(tmp_path, "off", "seq")
    assert "population trials: up to" in text and "population trials" not in seq_text
    assert len(pop.trials) == len(seq.trials) == 5
    for a in pop.trials[:3]:  # the anchors: same points, same measurements
        b = seq.trials[a.number]
        assert a.params == b.params and a.state == b.state
        assert a.value == pytest.approx(b.value, rel=1e-4)
        assert list(a.intermediate_values) == list(b.intermediate_values)
        assert TrialRecord.of(a).steps_trained == TrialRecord.of(b).steps_trained
        assert TrialRecord.of(a).curve == pytest.approx(TrialRecord.of(b).curve, rel=1e-4)
    assert len({tuple(sorted(t.params.items())) for t in pop.trials}) == 5  # the batch spread out
    me = TrialRecord.of(pop.trials[0]).worker
    assert me is not None and all(TrialRecord.of(t).worker == me for t in pop.trials)  # each claimed, owned


def test_a_halving_search_measures_the_same_rounds_and_pick_with_populations_and_sequential_trials(tmp_path):
    halving = ("--tune.search=halving", "--tune.budget=0.6", "--tune.steps=12")
    pop, text = _tune(tmp_path, "auto", "pop", search=halving)
    seq, _ = _tune(tmp_path, "off", "seq", search=halving)
    assert "halving search: 21 points (3 schemes × 7 gains)" in text
    assert [t.params for t in pop.trials] == [t.params for t in seq.trials]  # the same rounds, point for point
    rounds = {TrialRecord.of(t).fidelity["round"] for t in pop.trials}
    assert {0, 2} <= rounds
    for a, b in zip(pop.trials, seq.trials, strict=True):
        assert a.state == b.state and TrialRecord.of(a).fidelity == TrialRecord.of(b).fidelity
        if a.state == optuna.trial.TrialState.COMPLETE:
            assert a.value == pytest.approx(b.value, rel=1e-4)
    assert pop.best_trial.params == seq.best_trial.params
    assert TrialRecord.of(pop.best_trial).fidelity["steps"] == 12  # the pick is a fully trained point


def test_a_small_population_step_trains_on_one_thread_and_the_thread_count_is_restored(monkeypatch):
    from autoinit.tuner.common import threads
    from autoinit.tuner.population import engine as population

    seen, inits = [], []
    real, real_init = population._TrainingStep.forward, population._initialize

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(self, *args, **kwargs)

    def init_spy(*args, **kwargs):
        inits.append(torch.get_num_threads())
        return real_init(*args, **kwargs)

    monkeypatch.setattr(population._TrainingStep, "forward", spy)
    monkeypatch.setattr(population, "_initialize", init_spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    cfg = _cfg("configs/quickstart.yaml", "--model.init_args.depth=4", seeds=1)
    population.train_population(cfg, [population.Member(scheme="kaiming_normal", gain=1.0, seed=0)], steps=2)
    assert seen and set(seen) == {1}  # 6 × ~5k parameters × 64 rows: far below ONE_THREAD_BELOW_FLOPS
    assert inits == [1]  # the member's init too
    assert torch.get_num_threads() == 2
    assert threads.step_flops({"w": torch.zeros(1000)}, {"x": torch.zeros(64, 8), "y": torch.zeros(64)}) == 6e3 * 64
    monkeypatch.setattr(threads, "ONE_THREAD_BELOW_FLOPS", 0.0)  # a large step keeps its threads
    seen.clear()
    population.train_population(cfg, [population.Member(scheme="kaiming_normal", gain=1.0, seed=0)], steps=2)
    assert set(seen) == {2}
    torch.set_num_threads(before)
