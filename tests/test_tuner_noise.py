"""Lightning's known noise is silenced during a tune; the user's own warnings still show."""

import logging
import warnings

import lightning.pytorch as pl
import torch
import yaml
from torch import nn

from autoinit.tuner.common.noise import quiet_lightning
from autoinit.tuner.sources.config import TuneConfig
from autoinit.tuner.trials.trial import run_trial


class WarningMLP(pl.LightningModule):
    """A model whose training_step warns, as user code may."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        warnings.warn("the user's own warning", UserWarning, stacklevel=1)
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_user_warnings_show_and_lightnings_do_not():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_lightning():
            warnings.warn("mine", UserWarning, stacklevel=1)
            warnings.warn_explicit("lightning's", UserWarning, "trainer.py", 1, module="lightning.pytorch.trainer")
            from lightning.fabric.utilities.warnings import PossibleUserWarning

            warnings.warn("possibly", PossibleUserWarning, stacklevel=1)
        warnings.warn_explicit("after", UserWarning, "trainer.py", 1, module="lightning.pytorch.trainer")
    assert [str(w.message) for w in seen] == ["mine", "after"]


def test_lightning_info_loggers_are_quiet_and_restored():
    logger = logging.getLogger("lightning.pytorch")
    before = logger.level
    with quiet_lightning():
        assert not logging.getLogger("lightning.pytorch.utilities.rank_zero").isEnabledFor(logging.INFO)
    assert logger.level == before


def test_a_warning_from_the_users_training_step_reaches_them(tmp_path):
    path = tmp_path / "warn.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "test_tuner_noise.WarningMLP"},
                "data": {"class_path": "helpers.BlobsData"},
                "trainer": {"accelerator": "cpu", "devices": 1},
                "tune": {"steps": 3, "seeds": 1},
            }
        )
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = run_trial(TuneConfig(path), "kaiming_normal", 1.0)
    assert [len(c) for c in result.curves] == [3]
    messages = [str(w.message) for w in seen]
    assert "the user's own warning" in messages
    assert not [w for w in seen if w.filename and "/lightning/" in w.filename.replace("\\", "/")], messages
