"""tune.log_trials: every trained trial's loss curve lands in the config's logger, one run per trial."""

import csv

import pytest
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from rich.console import Console

import autoinit
from autoinit import AutoInitError
from autoinit.tuner.trials import loggers as trial_log
from autoinit.tuner.trials.loggers import register_trial_logger

KEYS = {
    "steps": 7,
    "seeds": 2,
    "n_trials": 3,
    "schemes": ["kaiming_normal"],
    "gain": [0.5, 1.0],
    "search": "grid",
    "pruner": "none",
}


def _tune(tmp_path, logger, **keys):
    from helpers import BlobsData, TinyClassifier

    return autoinit.tune(
        TinyClassifier,
        datamodule=BlobsData,
        trainer={"accelerator": "cpu", "logger": logger},
        output=str(tmp_path / "out"),
        log_trials=True,
        console=Console(quiet=True),
        **{**KEYS, **keys},
    )


def test_each_trial_logs_its_curve_and_point_to_a_csv_logger(tmp_path):
    result = _tune(tmp_path, CSVLogger(tmp_path / "logs", name="team"))
    runs = sorted((tmp_path / "logs" / "team").iterdir())
    assert [r.name for r in runs] == [f"tune-TinyClassifier-trial-{n:03d}" for n in range(3)]
    for run, row in zip(runs, sorted(result.trials, key=lambda r: r.number), strict=True):
        with (run / "metrics.csv").open() as f:
            losses = [float(r["tune/loss"]) for r in csv.DictReader(f)]
        assert len(losses) == 7  # the seed-mean curve, one value per step
        assert sum(losses) / len(losses) == pytest.approx(row.score, rel=1e-6)  # auc = its mean
        hp = (run / "hparams.yaml").read_text()
        assert f"scheme: {row.scheme}" in hp and "status: complete" in hp and f"trial: {row.number}" in hp


def test_tensorboard_logger_gets_one_event_file_per_trial(tmp_path):
    _tune(tmp_path, TensorBoardLogger(tmp_path / "tb", name="runs"), n_trials=2)
    runs = sorted(p.name for p in (tmp_path / "tb" / "runs").iterdir())
    assert runs == ["tune-TinyClassifier-trial-000", "tune-TinyClassifier-trial-001"]
    for run in runs:
        assert list((tmp_path / "tb" / "runs" / run).glob("events.out.tfevents.*"))


class _Unknown(Logger):
    name = "u"
    version = 0

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_a_logger_it_cannot_use_is_one_line_before_any_trial(tmp_path):
    with pytest.raises(AutoInitError, match=r"cannot log to a _Unknown .*register_trial_logger"):
        _tune(tmp_path, _Unknown())
    with pytest.raises(AutoInitError, match="trainer's logger is false"):
        _tune(tmp_path, False)
    assert not (tmp_path / "out" / "trials.csv").exists()


def test_registered_logger_class_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(trial_log, "_FACTORIES", dict(trial_log._FACTORIES))
    made = []

    class Mine(_Unknown):
        def log_metrics(self, metrics, step=None):
            made[-1].append(metrics["tune/loss"])

    register_trial_logger(Mine, lambda lg, name: made.append([]) or Mine())
    _tune(tmp_path, Mine(), n_trials=2)
    assert [len(m) for m in made] == [7, 7]
