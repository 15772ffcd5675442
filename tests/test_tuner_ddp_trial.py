"""A trial that itself runs on 2 devices (CPU DDP on gloo), launched by the tuner."""

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from rich.console import Console

from autoinit.tuner.config import TuneConfig
from autoinit.tuner.ddp_trial import trial_devices
from autoinit.tuner.run import tune

pytestmark = pytest.mark.multiprocess


def test_ddp_trial_reduces_loss_and_reports_once(tmp_path):
    path = tmp_path / "ddp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "class_path": "autoinit.templates.DeepMLP",
                    "init_args": {"depth": 3, "width": 16, "in_features": 32, "classes": 4},
                },
                "data": {
                    "class_path": "autoinit.templates.TeacherData",
                    "init_args": {"n": 512, "classes": 4, "batch_size": 32},
                },
                "trainer": {"accelerator": "cpu", "devices": 2, "strategy": "ddp"},
                "tune": {
                    "steps": 6,
                    "seeds": 1,
                    "report_every": 2,
                    "n_trials": 2,
                    "gain": 1.0,
                    "schemes": ["kaiming_normal"],
                    "pruner": "none",
                    "output": str(tmp_path / "out"),
                },
            }
        )
    )
    config = TuneConfig(path)
    assert trial_devices(config) == 2
    assert tune(config, Console(record=True, width=120)) == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "study.journal"))
    )
    trials = optuna.load_study(study_name="ddp", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    for t in trials:
        assert sorted(t.intermediate_values) == [2, 4, 6]  # rank 0 alone reported, every 2 steps
        assert len(t.user_attrs["curve"]) == 6
