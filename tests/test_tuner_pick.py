"""TunedAutoInit: the pick's init, its tuned learning-rate factor on a fresh fit, its scores as hparams."""

import lightning.pytorch as pl
import yaml
from helpers import TinyClassifier, trainer
from lightning.pytorch.loggers import CSVLogger

from autoinit.tuner.report.pick import TunedAutoInit

PICK = {"scheme": "kaiming_normal", "gain": 1.25, "options": {}, "lr_scale": 2.0, "improvement": 0.3, "score": 0.7}


class LearningRates(pl.Callback):
    def __init__(self):
        self.at_start: list[float] = []

    def on_train_start(self, trainer, pl_module):
        self.at_start = [g["lr"] for g in trainer.optimizers[0].param_groups]


def test_fresh_fit_scales_the_learning_rate_and_logs_the_pick(tmp_path):
    cb = TunedAutoInit.from_pick(PICK, verbose=False, seed=0)
    assert (cb.scheme, cb.gain, cb.lr_scale) == ("kaiming_normal", 1.25, 2.0)
    lrs = LearningRates()
    t = trainer(tmp_path, [cb, lrs], logger=CSVLogger(tmp_path), max_steps=3)
    t.fit(TinyClassifier(lr=0.05))
    assert lrs.at_start == [0.1]
    hp = yaml.safe_load((tmp_path / "lightning_logs" / "version_0" / "hparams.yaml").read_text())
    assert hp["autoinit/scheme"] == "kaiming_normal" and hp["autoinit/gain"] == 1.25
    assert (hp["autoinit/improvement"], hp["autoinit/score"], hp["autoinit/lr_scale"]) == (0.3, 0.7, 2.0)
    ckpt = tmp_path / "a.ckpt"
    t.save_checkpoint(ckpt)

    # Resumed: the optimizer state (already scaled) is restored and not scaled again; weights kept.
    lrs = LearningRates()
    resumed = TunedAutoInit.from_pick(PICK, verbose=False)
    trainer(tmp_path, [resumed, lrs], max_steps=5).fit(TinyClassifier(lr=0.05), ckpt_path=ckpt)
    assert lrs.at_start == [0.1]
