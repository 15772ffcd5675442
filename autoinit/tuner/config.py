"""A tune config: a LightningCLI fit config (model, data, trainer, optimizer, lr_scheduler) plus a
``tune`` section, parsed and instantiated by Lightning's own machinery (LightningCLI / jsonargparse)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningCLI

from autoinit.errors import AutoInitError, one_line
from autoinit.tuner.noise import quiet_lightning
from autoinit.tuner.settings import Range, TuneSettings
from autoinit.tuner.source import DROPPED_CALLBACKS, TRIAL_SET_TRAINER_KEYS, trial_trainer_kwargs


class _TuneCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_class_arguments(TuneSettings, "tune", instantiate=False, fail_untyped=False)

    def instantiate_trainer(self, **kwargs: Any) -> None:  # trials build their own Trainer
        return None


def _summarize_parse_error(exc: Exception) -> str:
    """jsonargparse's multi-line messages, reduced to the key and the most specific reason."""
    text = str(exc)
    unknown = re.search(r"unrecognized arguments: (\S+)", text)
    key = re.search(r'[Kk]ey "([^"]+)"', text)
    lines = [ln.strip(" -") for ln in text.splitlines()[1:] if ln.strip(" -")]
    reasons = [
        ln
        for ln in lines
        if not ln.startswith(
            (
                "Given value",
                "Problem with given class_path",
                "Expected a <class 'NoneType'>",
                "Does not validate",
                "Subtypes:",
                "Errors:",
            )
        )
    ]
    reason = reasons[0] if reasons else (lines[0] if lines else text.splitlines()[0])
    if "No module named" in text or "does not exist" in reason or "Import path" in text:
        m = re.search(r"No module named '[^']+'", text)
        reason = f"the class cannot be imported ({m.group(0) if m else reason})"
    out = f"'{key.group(1)}': {reason}" if key else reason
    if unknown:
        out = f"unknown key '{unknown.group(1).lstrip('-').split('=')[0]}'"
    if "'tune'" in out or "tune." in out:
        from dataclasses import fields

        out += f" (tune keys: {', '.join(f.name for f in fields(TuneSettings))})"
    return out


class TuneConfig:
    """A parsed tune config; :meth:`build` instantiates a fresh model and datamodule for each trial."""

    def __init__(self, path: str | Path, overrides: list[str] | None = None) -> None:
        self.path = Path(path)
        self.overrides = list(overrides or [])
        if not self.path.is_file():
            raise AutoInitError(f"no config file at '{self.path}': pass the path of a tune YAML (see configs/)")
        args = ["--config", str(self.path), *(overrides or [])]
        with quiet_lightning():
            try:
                self.cli = _TuneCLI(
                    args=args,
                    run=False,
                    save_config_callback=None,
                    seed_everything_default=False,
                    parser_kwargs={"exit_on_error": False},
                    auto_configure_optimizers=True,
                )
            except ArgumentError as exc:
                raise AutoInitError(f"config error in {self.path.name}: {_summarize_parse_error(exc)}") from None
            except Exception as exc:  # a model/data __init__ that raises on these arguments
                raise AutoInitError(f"config error in {self.path.name}: {one_line(exc)}") from None
        tune = self.cli.config.get("tune")
        settings_args = tune.as_dict() if hasattr(tune, "as_dict") else dict(tune or {})
        try:
            self.settings = TuneSettings(**_ranges(settings_args))
        except TypeError as exc:
            raise AutoInitError(f"config error in the tune section: {exc}") from None

    @property
    def study_name(self) -> str:
        return self.settings.study_name or self.path.stem

    @property
    def output(self) -> Path:
        return Path(self.settings.output or Path("autoinit-out") / self.study_name)

    def dump(self) -> dict[str, Any]:
        """The resolved config (after command-line overrides) as plain data."""
        return json.loads(json.dumps(self.cli.config.as_dict(), default=str))

    def sha256(self) -> str:
        """Hash of everything that changes what a trial measures (not the resumable tune keys: n_trials,
        storage, workers...; not the trainer keys a trial sets itself: max_epochs, logger...)."""
        data = self.dump()
        resumable = TuneSettings.resumable_keys()
        data["tune"] = {k: v for k, v in data.get("tune", {}).items() if k not in resumable}
        trainer = {k: v for k, v in (data.get("trainer") or {}).items() if k not in TRIAL_SET_TRAINER_KEYS}
        callbacks = trainer.get("callbacks")
        if isinstance(callbacks, list):  # the ones a trial drops change nothing it measures
            trainer["callbacks"] = [c for c in callbacks if _class_name(c) not in DROPPED_CALLBACKS]
        data["trainer"] = trainer
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def trainer_kwargs(self) -> dict[str, Any]:
        return trial_trainer_kwargs(self.cli.config_init.get("trainer") or {})

    def logger(self) -> Any:
        """The trainer's logger as the config gives it (instantiated), or None."""
        return (self.cli.config_init.get("trainer") or {}).get("logger")

    def build(self) -> tuple[pl.LightningModule, pl.LightningDataModule | None]:
        """A fresh model and datamodule, with the config's optimizer and lr_scheduler attached."""
        with quiet_lightning():
            self.cli.instantiate_classes()
        return self.cli.model, self.cli.datamodule


def _class_name(value: Any) -> str:
    path = value.get("class_path", "") if isinstance(value, dict) else ""
    return str(path).rsplit(".", 1)[-1]


def _ranges(args: dict[str, Any]) -> dict[str, Any]:
    out = dict(args)
    for key in ("gain", "lr_scale"):
        value = out.get(key)
        if isinstance(value, dict) or hasattr(value, "as_dict"):
            value = value.as_dict() if hasattr(value, "as_dict") else value
            unknown = set(value) - {"low", "high", "log"}
            if unknown:
                raise AutoInitError(
                    f"config error: unknown key '{sorted(unknown)[0]}' in tune.{key}: a range takes low, high and log"
                )
            out[key] = Range(**value)
    return out
