"""One table says what a trial does with each trainer key: the trial, the study hash and the population read it."""

import lightning.pytorch as pl
import pytest
import yaml

from autoinit import AutoInitError
from autoinit.tuner.population.engine import static_reason
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.sources.trainer_keys import TRAINER_KEYS, KeyUse, measured_trainer, population_accepts, trial_values
from autoinit.tuner.trials import trial as trial_module
from autoinit.tuner.trials.trial import run_trial

# Keys that would change how long a trial trains, each with a value that did before the table.
STRETCHING = {
    "max_time": "00:00:00:00",  # stops after the first step
    "min_steps": 50,  # keeps a pruned trial training
    "min_epochs": 3,
    "max_epochs": 1,  # an epoch of 512 / 32 = 16 batches: fine for 12 steps, but not the trial's to decide
    "max_steps": 5,
    "fast_dev_run": True,  # one step
    "val_check_interval": 1000,  # more batches than an epoch has
    "check_val_every_n_epoch": 2,
}


def _config(tmp_path, trainer=None, tune=None):
    cfg = {
        "model": {
            "class_path": "autoinit.templates.DeepMLP",
            "init_args": {"depth": 3, "width": 16, "in_features": 32, "classes": 4},
        },
        "data": {
            "class_path": "autoinit.templates.TeacherData",
            "init_args": {"n": 512, "classes": 4, "batch_size": 32},
        },
        "trainer": {"accelerator": "cpu", "devices": 1, **(trainer or {})},
        "tune": {"steps": 12, "seeds": 2, **(tune or {})},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return TuneConfig(path)


def test_every_set_key_is_unhashed_and_never_stops_a_population():
    for key, rule in TRAINER_KEYS.items():
        assert rule.hashed == (rule.use is KeyUse.TRAINS), key
        if rule.use is not KeyUse.TRAINS:
            assert population_accepts(key, object()), key
    assert trial_values(7)["max_steps"] == 7 and trial_values(7)["max_time"] is None
    assert measured_trainer({"max_time": "01:00:00:00", "min_steps": 9, "precision": "bf16-mixed"}) == {
        "precision": "bf16-mixed"
    }
    assert not population_accepts("some_future_key", 3) and population_accepts("some_future_key", None)


def test_a_trials_trainer_gets_exactly_the_overrides(tmp_path, monkeypatch):
    configured = {**STRETCHING, "gradient_clip_val": 0.5, "log_every_n_steps": 3, "default_root_dir": str(tmp_path)}
    cfg = _config(tmp_path, configured, tune={"steps": 2, "seeds": 1})
    seen: list[dict] = []

    class Recording(pl.Trainer):
        def __init__(self, **kwargs):
            seen.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(trial_module.pl, "Trainer", Recording)
    run_trial(cfg, "default", 1.0)
    (kwargs,) = seen
    callbacks = kwargs.pop("callbacks")
    assert [type(c).__name__ for c in callbacks][:1] == ["AutoInit"]
    configured_kwargs = {k: v for k, v in cfg.trainer_kwargs().items() if k != "callbacks"}  # with Lightning's defaults
    assert kwargs == {**configured_kwargs, **trial_values(2)}
    assert {k: kwargs[k] for k in ("gradient_clip_val", "log_every_n_steps", "default_root_dir")} == {
        "gradient_clip_val": 0.5,
        "log_every_n_steps": 3,
        "default_root_dir": str(tmp_path),
    }
    assert kwargs["max_steps"] == 2 and kwargs["max_time"] is None and kwargs["min_steps"] is None


@pytest.mark.parametrize("key", sorted(STRETCHING))
def test_a_stretching_trainer_key_changes_neither_the_steps_nor_the_study_hash(tmp_path, key):
    plain = _config(tmp_path).sha256()
    cfg = _config(tmp_path, {key: STRETCHING[key]})
    result = run_trial(cfg, "default", 1.0)
    assert result.status == "complete" and [len(c) for c in result.curves] == [12, 12]
    assert cfg.sha256() == plain
    assert static_reason(cfg) is None


@pytest.mark.parametrize("trainer", [{"min_steps": 50}, {"min_epochs": 5}, {"max_time": "00:01:00:00"}])
def test_a_pruned_trial_stops_at_the_pruning_step_whatever_the_trainer_says(tmp_path, trainer):
    cfg = _config(tmp_path, trainer, tune={"report_every": 3})
    result = run_trial(cfg, "default", 1.0, report=lambda step, value: step >= 6)
    assert result.status == "pruned" and [len(c) for c in result.curves] == [6]


class _StopAtThree(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= 3:
            trainer.should_stop = True


def test_a_trial_stopped_short_by_the_users_callback_is_not_complete(tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    monkeypatch.setattr(cfg, "trainer_kwargs", lambda c=cfg.trainer_kwargs: {**c(), "callbacks": [_StopAtThree()]})
    with pytest.raises(AutoInitError, match=r"training stopped after 3 of tune.steps=12 steps"):
        run_trial(cfg, "default", 1.0)
