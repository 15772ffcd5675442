"""End-to-end tunes on tiny configs."""

import csv
import gc
import re

import pytest
import torch
import yaml
from rich.console import Console

from autoinit import AutoInit, AutoInitError
from autoinit.cli import main
from autoinit.tuner.records.best import Pick
from autoinit.tuner.run import tune
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.storage import backend as storage

MLP = {
    "class_path": "autoinit.templates.DeepMLP",
    "init_args": {"depth": 4, "width": 16, "in_features": 32, "classes": 4},
}
DATA = {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 512, "classes": 4, "batch_size": 32}}


def _write(tmp_path, tune, model=MLP, data=DATA, name="tiny.yaml"):
    cfg = {
        "model": model,
        "data": data,
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {"steps": 8, "seeds": 1, "search": "tpe", "output": str(tmp_path / "out"), **tune},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(path, overrides=()):
    console = Console(record=True, width=140)
    code = tune(TuneConfig(path, list(overrides)), console)
    return code, console.export_text()


def _csv(tmp_path):
    with (tmp_path / "out" / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_tune_end_to_end_outputs_and_from_file(tmp_path):
    path = _write(
        tmp_path, {"schemes": ["kaiming_normal", "xavier_uniform"], "gain": [0.5, 1.0], "n_trials": 5, "pruner": "none"}
    )
    code, text = _run(path)
    assert code == 0
    rows = _csv(tmp_path)
    assert len(rows) == 5 and all(r["state"] == "complete" for r in rows)
    assert [(r["scheme"], r["gain"]) for r in rows[:3]] == [
        ("as_built", "1"),
        ("kaiming_normal", "1"),
        ("xavier_uniform", "1"),
    ]
    written = (tmp_path / "out" / "best.yaml").read_text()
    best = yaml.safe_load(written)
    # every key written is a field of the one record, which writes the file back byte for byte
    assert yaml.safe_dump(Pick.from_yaml_dict(best).to_yaml_dict(), sort_keys=False) == written
    assert set(best) >= {
        "scheme",
        "gain",
        "options",
        "score",
        "baseline",
        "baseline_score",
        "improvement",
        "steps",
        "seeds",
        "config_sha256",
        "autoinit_version",
    }
    assert best["score"] == pytest.approx(min(float(r["score_mean"]) for r in rows), rel=1e-5)
    assert best["improvement"] == pytest.approx((best["baseline_score"] - best["score"]) / best["baseline_score"])
    assert (tmp_path / "out" / "loss_curves.png").stat().st_size > 10_000
    assert "with the model's own init (PyTorch's default)" in text and "ranking" in text
    # one seed: no test over seeds, said so (unless the baseline itself scored best, or the pick stalled: then
    # keep the model's own init, said so); the SE column stays empty
    assert best["tied_with"] is None
    if best["scheme"] != "as_built":
        said = "the pick's loss stalled" if best["stalled"] else "one seed: no test over seeds"
        assert best["significant"] is None and said in text and best["keep_baseline"] is best["stalled"]
    assert all(r["score_se"] == "" and r["score_std"] for r in rows)
    cb = AutoInit.from_file(tmp_path / "out" / "best.yaml")
    assert cb.scheme == best["scheme"] and cb.gain == best["gain"]


def _unbuildable(monkeypatch):
    """A resume with nothing left to run builds nothing (no applicability check, no probe)."""

    def build(self):
        raise AssertionError("a resume with nothing left to run built the model")

    monkeypatch.setattr(TuneConfig, "build", build)


def test_resume_runs_only_missing_trials(tmp_path, monkeypatch):
    path = _write(tmp_path, {"schemes": ["kaiming_normal"], "gain": {"low": 0.5, "high": 2.0}, "n_trials": 3})
    assert _run(path)[0] == 0
    first = _csv(tmp_path)
    code, text = _run(path, ["--tune.n_trials=5"])
    assert code == 0 and "3 trials done, 2 to run" in text
    second = _csv(tmp_path)
    assert len(second) == 5 and second[:3] == first[:3]
    _unbuildable(monkeypatch)
    opened = []
    real_open = storage.open_storage
    monkeypatch.setattr(storage, "open_storage", lambda *a: opened.append(a) or real_open(*a))
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(a) or 0)
    code, text = _run(path, ["--tune.n_trials=5"])
    assert code == 0 and "5 trials done, 0 to run" in text and len(_csv(tmp_path)) == 5
    assert len(opened) == 1  # the journal replayed once, not once per check
    assert collected == []  # no trial follows: the startup objects are frozen without a collection first


def test_resume_with_a_different_config_is_refused(tmp_path):
    path = _write(tmp_path, {"schemes": ["kaiming_normal"], "gain": 1.0, "n_trials": 2})
    _run(path)
    with pytest.raises(AutoInitError, match="made from a different config"):
        _run(path, ["--tune.steps=9"])


def test_failing_user_code_fails_that_trial_and_the_study_goes_on(tmp_path):
    model = {"class_path": "helpers.FlakyMLP", "init_args": {"fail_scheme": "xavier_uniform"}}
    data = {"class_path": "helpers.BlobsData"}
    path = _write(
        tmp_path, {"schemes": ["xavier_uniform", "kaiming_normal"], "gain": 1.0, "n_trials": 3}, model=model, data=data
    )
    _code, _text = _run(path)
    rows = {r["scheme"]: r for r in _csv(tmp_path)}
    assert rows["xavier_uniform"]["state"] == "failed"
    assert rows["xavier_uniform"]["error"] == "ValueError: boom in user code under xavier_uniform"
    assert rows["kaiming_normal"]["state"] == "complete" and rows["as_built"]["state"] == "complete"


def test_diverged_trials_recorded_and_ranked_last(tmp_path):
    model = {
        "class_path": "autoinit.templates.DeepMLP",
        "init_args": {"depth": 8, "width": 16, "in_features": 32, "classes": 4, "activation": "linear", "lr": 0.5},
    }
    path = _write(
        tmp_path,
        {
            "schemes": ["default", "orthogonal"],
            "gain": [1.0, 30.0],
            "search": "grid",
            "n_trials": 6,
            "prescreen": False,
        },
        model=model,
    )
    _code, text = _run(path)
    rows = _csv(tmp_path)
    states = {(r["scheme"], r["gain"]): r["state"] for r in rows}
    assert states[("orthogonal", "30")] == "diverged" and states[("default", "30")] == "diverged"
    assert states[("as_built", "30")] == "complete"  # the model's own init takes no gain
    assert states[("orthogonal", "1")] == "complete"
    table = text[text.index("ranking") :]
    assert table.rindex("diverged") > table.rindex("complete")


def test_same_config_same_seeds_same_ranking(tmp_path):
    scores = []
    for run in ("a", "b"):
        path = _write(
            tmp_path,
            {"schemes": ["kaiming_normal", "lecun_normal"], "n_trials": 5, "output": str(tmp_path / run)},
            name=f"{run}.yaml",
        )
        _run(path)
        with (tmp_path / run / "trials.csv").open() as f:
            scores.append([(r["scheme"], r["gain"], r["score_mean"]) for r in csv.DictReader(f)])
    assert scores[0] == scores[1]


def test_ctrl_c_keeps_finished_trials_and_rerun_resumes(tmp_path):
    marker = tmp_path / "interrupt-once"
    marker.write_text("")
    model = {"class_path": "helpers.FlakyMLP", "init_args": {"interrupt_file": str(marker)}}
    path = _write(
        tmp_path,
        {"schemes": ["kaiming_normal", "orthogonal"], "gain": 1.0, "n_trials": 3},
        model=model,
        data={"class_path": "helpers.BlobsData"},
    )
    code, text = _run(path)
    assert code == 130 and "interrupted: 2 finished trials are kept" in text
    rows = _csv(tmp_path)
    assert [r["state"] for r in rows] == ["complete", "complete", "failed"]
    code, text = _run(path)
    assert code == 0
    rows = _csv(tmp_path)
    assert [(r["scheme"], r["state"]) for r in rows if r["state"] == "complete"] == [
        ("as_built", "complete"),
        ("kaiming_normal", "complete"),
        ("orthogonal", "complete"),
    ]


def test_relu_30_layers_prefers_relu_aware_init(tmp_path):
    """He et al. 2015: a 30-layer plain ReLU net trains under Kaiming (or orthogonal·√2, LSUV), not under
    Xavier or PyTorch's default."""
    # One torch thread: on a loaded 2-core machine every one of this 30-layer net's many tiny ops would
    # wait for a second, descheduled thread (measured: 300 s instead of 4 s under two busy processes).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _relu_30_layers(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _relu_30_layers(tmp_path):
    model = {
        "class_path": "autoinit.templates.DeepMLP",
        "init_args": {"depth": 30, "width": 32, "in_features": 64, "classes": 10, "lr": 0.02},
    }
    data = {"class_path": "autoinit.templates.DigitsData", "init_args": {"flat": True, "batch_size": 64}}
    path = _write(
        tmp_path,
        {
            "schemes": ["xavier_uniform", "kaiming_normal", "orthogonal", "lsuv"],
            "gain": 1.0,
            "search": "grid",
            "n_trials": 5,
            "prescreen": False,
            "steps": 100,
            "seeds": 2,
        },
        model=model,
        data=data,
    )
    assert _run(path)[0] == 0
    score = {r["scheme"]: float(r["score_mean"]) for r in _csv(tmp_path)}
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["scheme"]
    assert best in ("kaiming_normal", "orthogonal", "lsuv")
    assert score[best] < score["xavier_uniform"] and score[best] < score["as_built"]


def test_cli_tune_and_one_line_config_error(tmp_path, capsys):
    path = _write(tmp_path, {"schemes": ["kaiming_normal"], "gain": 1.0, "n_trials": 2})
    assert main(["tune", str(path), "--tune.steps=5"]) == 0
    assert main(["tune", str(path), "--tune.stepz=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoinit: error: config error in tiny.yaml: unknown key 'tune.stepz'")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(("sampler", "pruner"), [("random", "hyperband"), ("gp", "median"), ("tpe", "none")])
def test_every_sampler_and_pruner_runs(tmp_path, sampler, pruner):
    path = _write(
        tmp_path,
        {
            "schemes": ["kaiming_normal", "orthogonal"],
            "n_trials": 5,
            "search": sampler,
            "pruner": pruner,
            "lr_scale": {"low": 0.5, "high": 2.0},
        },
    )
    assert _run(path)[0] == 0
    rows = _csv(tmp_path)
    assert len([r for r in rows if r["state"] in ("complete", "pruned")]) == 5
    assert {r["lr_scale"] for r in rows[:3]} == {"1"}  # anchors at the textbook point
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert "lr_scale" in best


def test_halving_search_screens_the_ladder_then_trains_the_best_within_its_budget(tmp_path):
    path = _write(
        tmp_path,
        {"schemes": ["kaiming_normal", "orthogonal", "xavier_uniform"], "search": "halving", "steps": 20, "seeds": 2},
    )
    code, text = _run(path)
    assert code == 0
    words = r"halving search: 21 points \(3 schemes × 7 gains\) screened at (\d+) steps × 1 seed"
    prefix = re.search(words.replace(" ", r"\s+"), text)
    assert prefix is not None, text
    rows = _csv(tmp_path)
    assert all(r["round"] != "" for r in rows)
    screen = [r for r in rows if r["round"] == "0" and r["steps"] == prefix.group(1)]
    assert len(screen) == 21 and {r["state"] for r in screen} <= {"screened", "prescreened", "diverged"}
    assert next(r for r in rows if r["round"] == "0" and r["steps"] == "20")["scheme"] == "as_built"  # baseline
    assert {r["round"] for r in rows} >= {"0", "2"}
    spent = sum(int(r["steps"]) * int(r["seeds"]) for r in rows if r["state"] in ("screened", "complete"))
    assert spent <= 0.26 * (3 * 5 + 1) * 2 * 20  # the budget: a quarter of the grid's member-steps (raised a bit)
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    winner = next(r for r in rows if int(r["number"]) == best["trial"])
    assert winner["state"] == "complete" and (winner["steps"], winner["seeds"]) == ("20", "2")
    complete = [float(r["score_mean"]) for r in rows if r["state"] == "complete"]
    assert best["score"] == pytest.approx(min(complete), rel=1e-5)  # trials.csv holds 6 digits
    # a resume has nothing left to run and picks the same
    monkeypatch = pytest.MonkeyPatch()
    _unbuildable(monkeypatch)
    code, _ = _run(path)
    monkeypatch.undo()
    assert code == 0 and yaml.safe_load((tmp_path / "out" / "best.yaml").read_text()) == best
    assert len(_csv(tmp_path)) == len(rows)
    from autoinit.tuner.reuse import finished_study

    assert finished_study(TuneConfig(path)) is not None  # `autoinit fit` and autoinit.tune() reuse it


def test_a_halving_budget_below_round_zero_is_one_line_before_any_training(tmp_path):
    path = _write(tmp_path, {"schemes": ["kaiming_normal"], "search": "halving", "budget": 0.05, "steps": 12})
    with pytest.raises(AutoInitError) as err:
        _run(path)
    assert "tune.budget 0.05" in str(err.value) and "round 0" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "study.journal").exists()


def test_prescreen_keeps_hopeless_points_out_of_training(tmp_path):
    model = {
        "class_path": "autoinit.templates.DeepMLP",
        "init_args": {"depth": 8, "width": 16, "in_features": 32, "classes": 4, "activation": "linear", "lr": 0.5},
    }
    path = _write(
        tmp_path, {"schemes": ["orthogonal"], "gain": [1.0, 30.0], "search": "grid", "n_trials": 4}, model=model
    )
    assert _run(path)[0] == 0
    states = {(r["scheme"], r["gain"]): r for r in _csv(tmp_path)}
    assert states[("orthogonal", "30")]["state"] == "prescreened"
    assert states[("orthogonal", "30")]["score_mean"] == ""  # no training step was spent (never a timing)
    assert states[("as_built", "30")]["state"] in ("diverged", "complete", "pruned")  # the baseline: always trained
    assert states[("orthogonal", "1")]["state"] == "complete"


def test_prescreen_drops_xavier_from_a_30_layer_relu_net(tmp_path):
    model = {
        "class_path": "autoinit.templates.DeepMLP",
        "init_args": {"depth": 30, "width": 32, "in_features": 64, "classes": 10},
    }
    data = {"class_path": "autoinit.templates.DigitsData", "init_args": {"flat": True}}
    path = _write(
        tmp_path,
        {"schemes": ["xavier_uniform", "kaiming_normal"], "gain": 1.0, "n_trials": 2, "steps": 3},
        model=model,
        data=data,
    )
    code, text = _run(path)
    assert code == 0
    assert "pre-screen: xavier_uniform left out" in text
    assert {r["scheme"] for r in _csv(tmp_path)} == {"as_built", "kaiming_normal"}


def test_a_run_whose_first_trials_all_fail_stops(tmp_path):
    model = {"class_path": "helpers.FlakyMLP", "init_args": {"fail_scheme": "*"}}
    path = _write(
        tmp_path,
        {"schemes": ["kaiming_normal", "orthogonal", "lecun_normal"], "n_trials": 10},
        model=model,
        data={"class_path": "helpers.BlobsData"},
    )
    code, text = _run(path)
    assert code == 1 and "the first trials all failed (ValueError: boom in user code" in text
    assert [r["state"] for r in _csv(tmp_path)][:3] == ["failed"] * 3  # the rest stay queued


def test_two_studies_given_the_same_output_the_second_is_refused(tmp_path):
    a = _write(tmp_path, {"schemes": ["kaiming_normal"], "gain": 1.0, "n_trials": 2}, name="a.yaml")
    assert _run(a)[0] == 0
    best = (tmp_path / "out" / "best.yaml").read_text()
    b = _write(tmp_path, {"schemes": ["orthogonal"], "gain": 1.0, "n_trials": 2}, name="b.yaml")
    with pytest.raises(AutoInitError, match="holds the outputs of study 'a', not 'b': give this study its own"):
        _run(b)
    assert (tmp_path / "out" / "best.yaml").read_text() == best
    assert _run(b, [f"--tune.output={tmp_path / 'out-b'}"])[0] == 0
    assert _run(a, ["--tune.n_trials=3"])[0] == 0  # the owner resumes


def test_a_study_refused_at_its_checks_claims_no_output(tmp_path):
    broken = _write(tmp_path, {"schemes": ["kaiming_normal"], "metric": "nope"}, name="broken.yaml")
    with pytest.raises(AutoInitError, match="metric 'nope' was not logged"):
        _run(broken)
    fixed = _write(tmp_path, {"schemes": ["kaiming_normal"], "gain": 1.0, "n_trials": 2}, name="fixed.yaml")
    assert _run(fixed)[0] == 0


def test_a_failed_run_lists_only_the_files_it_wrote(tmp_path, caplog):
    model = {"class_path": "helpers.FlakyMLP", "init_args": {"fail_scheme": "*"}}
    path = _write(
        tmp_path, {"schemes": ["kaiming_normal"], "n_trials": 3}, model=model, data={"class_path": "helpers.BlobsData"}
    )
    code, text = _run(path)
    assert code == 1
    assert "outputs in" in text and text.rstrip().endswith("trials.csv")
    assert "best.yaml" not in text and not (tmp_path / "out" / "best.yaml").exists()
    failures = [r for r in caplog.records if "Trial 0 failed with parameters" in r.getMessage()]
    assert failures and failures[0].exc_info is None  # Optuna's line, not its traceback


def _summary_line(text):
    return next(line for line in text.splitlines() if line.startswith("best: "))


def test_verdict_when_the_baseline_stalls_in_best_yaml_summary_and_result(tmp_path):
    # Twelve plain ReLU layers: PyTorch's default stalls, Kaiming learns — a gap far beyond the seeds' spread,
    # but a flat loss's spread is no measure of noise: no "beyond noise", the stall is named instead.
    model = {"class_path": "helpers.TinyClassifier", "init_args": {"depth": 12, "width": 32, "lr": 0.05}}
    keys = {"schemes": ["kaiming_normal"], "gain": 1.0, "n_trials": 2, "steps": 20, "seeds": 3, "pruner": "none"}
    path = _write(tmp_path, keys, model=model, data={"class_path": "helpers.BlobsData"})
    console = Console(record=True, width=400)
    assert tune(TuneConfig(path), console) == 0
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["scheme"] == "kaiming_normal" and best["tied_with"] == []
    assert best["baseline_stalled"] is True and best["significant"] is None and best["keep_baseline"] is False
    line = _summary_line(console.export_text())
    assert line.endswith(
        f"with the model's own init (PyTorch's default) ({-100 * best['improvement']:+.0f}%), the model's own init "
        "stalled (its loss never fell beyond its noise): no test over seeds"
    )
    rows = {r["scheme"]: r for r in _csv(tmp_path)}
    std = float(rows["kaiming_normal"]["score_std"])
    assert float(rows["kaiming_normal"]["score_se"]) == pytest.approx(std / 2**0.5, rel=1e-4)  # std(ddof=0)/√(n-1)

    from autoinit.tuner.report.result import TuneResult

    result = TuneResult.load(TuneConfig(path))
    assert str(result) == line and result.significant is None and result.tied_with == []


def test_verdict_within_noise_says_keep_the_default(tmp_path):
    # A residual net on dict batches: LeCun's early loss is 3% below the default's, within the seeds' spread.
    model, data = {"class_path": "helpers.ResidualMLP"}, {"class_path": "helpers.DictBlobsData"}
    schemes = ["orthogonal", "lecun_normal", "xavier_normal", "kaiming_normal"]
    keys = {"schemes": schemes, "gain": 1.0, "n_trials": 5, "steps": 12, "seeds": 2, "pruner": "none"}
    path = _write(tmp_path, keys, model=model, data=data)
    console = Console(record=True, width=400)
    assert tune(TuneConfig(path), console) == 0
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["significant"] is False
    line = _summary_line(console.export_text())
    if best["scheme"] == "as_built":  # which of the tied points scores lowest depends on the CPU's rounding
        assert "the model's own init itself scored best: keep it" in line
    else:
        baseline = {"scheme": "as_built", "gain": 1.0, "score": best["baseline_score"]}
        assert baseline in best["tied_with"]
        assert ", no init beats the model's own init beyond the spread over seeds (Welch, 2 seeds): keep it" in line
    from autoinit.tuner.report.result import TuneResult

    assert str(TuneResult.load(TuneConfig(path))) == line
