"""autoinit.tune() from Python: the same study as the CLI, a TuneResult, one-line errors for bad input."""

import csv
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import BlobsData, TinyClassifier, blobs
from rich.console import Console
from torch.utils.data import DataLoader
from userland import OneShotStream

import autoinit
from autoinit import AutoInit, AutoInitError
from autoinit.templates import DeepMLP, TeacherData
from autoinit.tuner.run import tune as run_tune
from autoinit.tuner.sources.config import TuneConfig

MLP_ARGS = {"depth": 4, "width": 16, "in_features": 32, "classes": 4}
DATA_ARGS = {"n": 512, "classes": 4, "batch_size": 32}
KEYS = {
    "steps": 8,
    "seeds": 2,
    "n_trials": 4,
    "search": "tpe",
    "schemes": ["kaiming_normal"],
    "gain": [0.5, 1.0],
    "pruner": "none",
}


def _quiet():
    return Console(record=True, width=140)


def _csv(folder):
    with (folder / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_python_tune_is_the_cli_study_and_returns_the_pick(tmp_path):
    console = _quiet()
    result = autoinit.tune(
        DeepMLP,
        model_args=MLP_ARGS,
        datamodule=TeacherData,
        data_args=DATA_ARGS,
        trainer={"accelerator": "cpu", "devices": 1},
        output=str(tmp_path / "py"),
        console=console,
        **KEYS,
    )
    # The same setup as a YAML config through `autoinit tune`: the same trials, the same scores.
    cfg = {
        "model": {"class_path": "autoinit.templates.DeepMLP", "init_args": MLP_ARGS},
        "data": {"class_path": "autoinit.templates.TeacherData", "init_args": DATA_ARGS},
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tune": {**KEYS, "output": str(tmp_path / "cli")},
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    assert run_tune(TuneConfig(tmp_path / "t.yaml"), _quiet()) == 0
    py, cli = _csv(tmp_path / "py"), _csv(tmp_path / "cli")
    assert [(r["scheme"], r["gain"], r["score_mean"]) for r in py] == [
        (r["scheme"], r["gain"], r["score_mean"]) for r in cli
    ]
    assert len(py) == 4 and all(r["state"] == "complete" for r in py)

    best = yaml.safe_load((tmp_path / "py" / "best.yaml").read_text())
    assert (result.scheme, result.gain, result.score) == (best["scheme"], best["gain"], best["score"])
    assert result.baseline_score == best["baseline_score"] and result.improvement == best["improvement"]
    assert result.improvement == pytest.approx((result.baseline_score - result.score) / result.baseline_score)
    scores = [r.score for r in result.ranking]
    assert scores == sorted(scores) and scores[0] == result.score and len(result.trials) == 4
    assert result.study_name == "DeepMLP" and result.output == tmp_path / "py" and not result.interrupted
    assert isinstance(result.significant, bool) and result.significant == best["significant"]
    assert isinstance(result.tied_with, list) and result.tied_with == best["tied_with"]
    fig = result.plot()
    assert len(fig.axes[0].lines) == 4  # default + the three others
    cb = AutoInit.from_file(result.to_yaml(tmp_path / "pick.yaml"))
    assert (cb.scheme, cb.gain) == (result.scheme, result.gain)
    tuned = result.callback(seed=3)
    chosen = best["baseline"] if best["keep_baseline"] else best  # the verdict may be to keep the model's own init
    assert isinstance(tuned, AutoInit) and (tuned.scheme, tuned.gain, tuned.seed) == (
        chosen["scheme"],
        chosen["gain"],
        3,
    )
    assert tuned.hparams()["autoinit/improvement"] == result.improvement
    assert str(result).startswith(f"best: {result.scheme}")


def test_finished_study_is_read_back_and_a_changed_model_gets_its_own(tmp_path):
    kw = dict(datamodule=BlobsData, trainer={"accelerator": "cpu"}, output=str(tmp_path), **KEYS)
    first = autoinit.tune(TinyClassifier, model_args={"depth": 2}, console=_quiet(), **kw)
    console = _quiet()
    again = autoinit.tune(TinyClassifier, model_args={"depth": 2}, console=console, **kw)
    assert "read back, nothing tuned" in console.export_text()
    assert (again.scheme, again.gain, again.score) == (first.scheme, first.gain, first.score)
    console = _quiet()
    deeper = autoinit.tune(TinyClassifier, model_args={"depth": 3}, console=console, **kw)
    assert deeper.study_name.startswith("TinyClassifier-") and len(deeper.study_name) == len("TinyClassifier-") + 8
    assert "made from another setup" in console.export_text() and deeper.score != first.score
    # a factory that builds the same model is another setup too (its source is part of the hash)
    assert autoinit.tune(lambda: TinyClassifier(depth=2), console=_quiet(), **kw).study_name != first.study_name


def test_model_instance_and_other_bad_input_are_one_line_errors(tmp_path):
    model = TinyClassifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kw = dict(datamodule=BlobsData, output=str(tmp_path), steps=4, seeds=1, n_trials=1, search="tpe")
    cases = [
        (lambda: autoinit.tune(model, **kw), r"got a TinyClassifier instance: trials need a fresh model.*lambda"),
        (lambda: autoinit.tune(lambda: model, **kw), "returned the same object twice"),
        (lambda: autoinit.tune(torch.nn.Linear, **kw), "needs a LightningModule class, got Linear"),
        (lambda: autoinit.tune(lambda: 3, **kw), "returned a int, not a LightningModule"),
        (lambda: autoinit.tune(lambda: TinyClassifier(), model_args={"depth": 2}, **kw), "model_args go with"),
        (lambda: autoinit.tune(TinyClassifier, steps=4, datamodule=BlobsData(), data_args={"n": 3}), "data_args go"),
        (lambda: autoinit.tune(TinyClassifier, stepz=4), r"unknown tune key 'stepz' \(did you mean 'steps'\?\)"),
        (lambda: autoinit.tune(TinyClassifier, gain={"low": 1, "hi": 2}), "range takes low, high and log"),
        (lambda: autoinit.tune(TinyClassifier, steps=0), r"tune\.steps must be > 0"),
        (lambda: autoinit.tune(TinyClassifier, trainer=["cpu"]), "takes a dict of Trainer arguments"),
        (lambda: autoinit.tune(TinyClassifier, datamodule=DataLoader(blobs())), "goes in train_dataloaders"),
        (
            lambda: autoinit.tune(TinyClassifier, datamodule=BlobsData(), train_dataloaders=[1]),
            "not both",
        ),
    ]
    for call, message in cases:
        with pytest.raises(AutoInitError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(tmp_path.iterdir())  # refused before any work


def test_data_used_as_is_only_when_it_replays_in_the_same_order(tmp_path):
    kw = dict(
        trainer={"accelerator": "cpu"},
        output=str(tmp_path),
        steps=6,
        seeds=2,
        n_trials=2,
        search="tpe",
        console=_quiet(),
    )
    kw["schemes"] = ["kaiming_normal"]
    # shuffled by the global RNG: seeded the same before each trial, so the same order
    loaders = autoinit.tune(TinyClassifier, train_dataloaders=DataLoader(blobs(), batch_size=16, shuffle=True), **kw)
    from_class = autoinit.tune(TinyClassifier, datamodule=BlobsData, **{**kw, "output": str(tmp_path / "c")})
    assert [r.score for r in loaders.trials] == [r.score for r in from_class.trials]
    own_generator = DataLoader(blobs(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    with pytest.raises(AutoInitError, match=r"gave other batches when iterated again.*own generator"):
        autoinit.tune(TinyClassifier, train_dataloaders=own_generator, **kw)
    with pytest.raises(AutoInitError, match="gave other batches"):
        autoinit.tune(TinyClassifier, train_dataloaders=DataLoader(OneShotStream(), batch_size=8), **kw)


def test_workers_need_an_importable_model(tmp_path):
    kw = dict(datamodule=BlobsData, output=str(tmp_path), steps=4, seeds=1, n_trials=2, search="tpe", workers=2)
    with pytest.raises(AutoInitError, match=r"workers > 1 .* model is given as a factory"):
        autoinit.tune(lambda: TinyClassifier(), **kw)

    class Inner(TinyClassifier):
        pass

    with pytest.raises(AutoInitError, match=r"Inner is defined inside a function.*or run with workers=1"):
        autoinit.tune(Inner, **kw)
    with pytest.raises(AutoInitError, match="data is given as an object"):
        autoinit.tune(TinyClassifier, **{**kw, "datamodule": BlobsData()})
    with pytest.raises(AutoInitError, match="trainer arguments hold objects"):
        autoinit.tune(TinyClassifier, trainer={"callbacks": [AutoInit()]}, **kw)


@pytest.mark.multiprocess
def test_workers_from_python_rebuild_an_importable_model(tmp_path):
    # From another folder, as a script would run: the workers find `helpers` through PYTHONPATH.
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(__import__('helpers').__file__.rsplit('/', 1)[0])!r})\n"
        "import autoinit\n"
        "from helpers import TinyClassifier, BlobsData\n"
        "r = autoinit.tune(TinyClassifier, model_args={'depth': 2}, datamodule=BlobsData, workers=2, steps=4,\n"
        "    seeds=1, n_trials=4, search='tpe', schemes=['kaiming_normal'], gain=[0.5, 1.0], output='out',\n"
        "    verbose=False)\n"
        "print('RESULT', r.scheme, len(r.trials))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RESULT" in proc.stdout and proc.stdout.split()[-1] == "4"
    assert (tmp_path / "out" / "autoinit_spec.yaml").is_file()
    assert {r["state"] for r in _csv(tmp_path / "out")} == {"complete"}
    logs = [(tmp_path / "out" / f"worker-{i}.log").read_text() for i in range(2)]
    assert all("Error" not in text for text in logs)
