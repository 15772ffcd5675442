"""The Lightning callback for a tuner's pick: :class:`AutoInit` with the picked scheme, gain and options,
which on a fresh fit also scales the optimizers' learning rate by the tuned ``lr_scale`` and logs the pick
and its improvement to every logger of the fit as hyperparameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl

from autoinit.callback import AutoInit
from autoinit.tuner.records.best import Pick
from autoinit.tuner.report.verdicts import recommended
from autoinit.tuner.trials.trial import LearningRateScale

# best.yaml keys logged as hyperparameters (prefixed autoinit/); AutoInit itself logs scheme, gain, seed.
LOGGED_KEYS = (
    "improvement",
    "significant",
    "score",
    "baseline_score",
    "default_score",
    "objective",
    "lr_scale",
    "study",
    "trial",
    "config_sha256",
)


class TunedAutoInit(AutoInit):
    """``AutoInit`` configured with a tune's pick.

    Args:
        scheme, gain, options, seed, verbose...: as :class:`AutoInit`.
        lr_scale: the tuned factor on every optimizer's learning rate (applied on a fresh fit only: a resumed
            fit restores its optimizer state, scaled already).
        pick: what the tune found (a :class:`~autoinit.tuner.records.best.Pick`, or best.yaml's content); its
            :data:`LOGGED_KEYS` are logged to the fit's loggers as ``autoinit/<key>``.
    """

    def __init__(
        self,
        scheme: str = "auto",
        gain: float = 1.0,
        *,
        lr_scale: float = 1.0,
        pick: Pick | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scheme, gain, **kwargs)
        self.lr_scale = float(lr_scale)
        # (a mapping: best.yaml's content, as read from the file)
        self.pick = pick if isinstance(pick, Pick) or pick is None else Pick.from_yaml_dict(pick)

    @classmethod
    def from_pick(cls, pick: Pick | Mapping[str, Any], **overrides: Any) -> TunedAutoInit:
        """From what a tune found (a :class:`~autoinit.tuner.records.best.Pick`, or best.yaml's content): the init it
        recommends (:func:`~autoinit.tuner.report.verdicts.recommended`: the pick, the baseline when the verdict is
        to keep it, or a proxy study's transfer check's choice)."""
        if not isinstance(pick, Pick):
            pick = Pick.from_yaml_dict(pick)
        chosen = recommended(pick)
        kwargs: dict[str, Any] = {
            "scheme": chosen.scheme,
            "gain": chosen.gain,
            "options": dict(chosen.options),
            "lr_scale": chosen.lr_factor,
            "pick": pick,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def hparams(self) -> dict[str, Any]:
        """The pick as the hyperparameters logged to the fit's loggers."""
        values = self.pick.to_yaml_dict() if self.pick is not None else {}
        out = {f"autoinit/{k}": v for k, v in values.items() if k in LOGGED_KEYS and v is not None}
        out["autoinit/lr_scale"] = self.lr_scale
        return out

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fresh = not (self.initialized or trainer.ckpt_path is not None)
        super().on_fit_start(trainer, pl_module)
        if fresh and self.lr_scale != 1.0:
            LearningRateScale(self.lr_scale).on_fit_start(trainer, pl_module)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_hyperparams(self.hparams())
