"""``autoinit fit config.yaml``: tune the config's init (or reuse the finished study of the same config),
then run LightningCLI's ``fit`` on the same config with ``AutoInit`` set to the pick.

Every LightningCLI fit option works as with ``python main.py fit --config config.yaml ...``: the command
line is the config's overrides (``--trainer.max_epochs=5``, ``--model.init_args.width=64``) plus the
``fit`` subcommand's own options (``--ckpt_path`` to resume, whose restored weights are kept: nothing is
tuned and ``AutoInit`` leaves a resumed model alone). With ``tune.proxy`` the study runs on the proxy and
the fit follows what its check on the full model recommends (:mod:`autoinit.tuner.report.transfer`). Trainer keys
a trial sets itself (``max_epochs``, ``logger``, ``callbacks`` such as checkpointing) are not part of the
config's hash, so changing them does not tune again.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.cli import LightningCLI
from rich.console import Console

from autoinit.callback import AutoInit
from autoinit.errors import AutoInitError
from autoinit.interrupts import INTERRUPTED
from autoinit.noise import quiet_cli_args
from autoinit.tuner.sources.settings import TuneSettings

# Trainer.fit arguments a config cannot hold (LightningCLI fills the model and data ones itself).
_FIT_ONLY = tuple(
    name
    for name in inspect.signature(pl.Trainer.fit).parameters
    if name not in ("self", "model", "train_dataloaders", "val_dataloaders", "datamodule")
)
# ckpt_path values Lightning resolves itself rather than reading a file.
_SPECIAL_CKPT = ("last", "best", "hpc", "registry")


class _FitCLI(LightningCLI):
    """LightningCLI that accepts (and ignores) the config's ``tune`` section, and fits with ``init`` in
    place of any ``AutoInit`` the config's trainer callbacks hold."""

    def __init__(self, *, init: AutoInit | None, **kwargs: Any) -> None:
        self._init = init
        super().__init__(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_class_arguments(TuneSettings, "tune", instantiate=False, fail_untyped=False)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        if self._init is not None:
            config = self.config_init.get(str(self.subcommand), self.config_init)
            callbacks = (config.get("trainer") or {}).get("callbacks") or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            kept = [c for c in callbacks if not isinstance(c, AutoInit)]
            kwargs["callbacks"] = [*kept, self._init]
        return super().instantiate_trainer(**kwargs)


def split_args(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The config overrides, and the ``fit`` subcommand's own options (``--ckpt_path``...) by name."""
    overrides: list[str] = []
    fit_only: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        name = key[2:] if key.startswith("--") else ""
        if name in _FIT_ONLY:
            if not eq:
                if i + 1 >= len(args):
                    raise AutoInitError(f"--{name} needs a value: --{name}=VALUE")
                i += 1
                value = args[i]
            fit_only[name] = value
        else:
            overrides.append(arg)
        i += 1
    return overrides, fit_only


def has_tune_section(path: Path, overrides: list[str]) -> bool:
    """Whether the config file (or a command-line override) gives a ``tune`` section."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        data = None  # LightningCLI's parse reports it
    return (isinstance(data, dict) and data.get("tune") is not None) or any(
        a.startswith("--tune.") or a.startswith("--tune=") for a in overrides
    )


def _check_ckpt(ckpt_path: str | None) -> None:
    if ckpt_path is None or ckpt_path in _SPECIAL_CKPT or "://" in ckpt_path:
        return
    if not Path(ckpt_path).is_file():
        raise AutoInitError(
            f"--ckpt_path '{ckpt_path}': no such checkpoint file: pass the .ckpt to resume from (or 'last')"
        )


def pick_init(path: Path, overrides: list[str], *, resuming: bool, console: Console) -> AutoInit | None:
    """The callback the fit runs with: the tune's pick (tuned now, or read back from a finished study of
    the same config), the config's own AutoInit, or ``AutoInit()``; None keeps the config's own."""
    from autoinit.tuner import run
    from autoinit.tuner.report.result import TuneResult
    from autoinit.tuner.report.verdicts import fit_line
    from autoinit.tuner.reuse import reusable, study_for
    from autoinit.tuner.sources.config import TuneConfig
    from autoinit.tuner.trials.loggers import configured_loggers

    config = TuneConfig(path, overrides)  # every key checked: one-line errors before any work
    trainer = config.cli.config_init.get("trainer") or {}
    callbacks = trainer.get("callbacks") or []
    own = [c for c in (callbacks if isinstance(callbacks, list) else [callbacks]) if isinstance(c, AutoInit)]
    if not has_tune_section(path, overrides):
        if own:
            console.print(f"no tune section in {path.name}: fitting with the config's AutoInit('{own[0].scheme}')")
            return None
        console.print(
            f"no tune section in {path.name}: fitting with AutoInit() defaults (scheme 'auto', gain 1); add a "
            "tune section to pick the init by measurement"
        )
        return AutoInit()

    def renamed(config: TuneConfig, name: str, output: Path) -> TuneConfig:
        return TuneConfig(path, [*overrides, f"--tune.study_name={name}", f"--tune.output={output}"])

    target = study_for(config, renamed, lambda msg: console.print(f"[dim]{msg}[/dim]"))
    config, source, full = target.config, target.source, target.full
    result = target.finished()
    if resuming:
        console.print("resuming from a checkpoint: the restored weights are kept, nothing is tuned")
        return result.callback() if result is not None else AutoInit()
    if reusable(result, full):
        console.print(f"study '{source.study_name}' is finished for this config: its pick is reused, nothing tuned")
    else:
        if config.settings.log_trials:
            configured_loggers(config)
        code = run.tune(config, console, proxy=None if full is None else source)
        if code == INTERRUPTED:
            raise KeyboardInterrupt
        result = TuneResult.load(source, full=full)
    console.print(f"{fit_line(result.pick)} ({result})")
    return result.callback()


def fit(config: str | Path, args: list[str], console: Console | None = None) -> int:
    """``autoinit fit config.yaml [overrides and fit options]``; returns the exit code."""
    console = console or Console()
    path = Path(config)
    if not path.is_file():
        raise AutoInitError(f"no config file at '{path}': pass the path of a LightningCLI fit config")
    overrides, fit_only = split_args(args)
    _check_ckpt(fit_only.get("ckpt_path"))
    try:
        init = pick_init(path, overrides, resuming=fit_only.get("ckpt_path") is not None, console=console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted while tuning: the finished trials are kept; nothing was fitted")
        return INTERRUPTED
    fit_args = [f"--{k}={v}" for k, v in fit_only.items()]
    with quiet_cli_args():  # autoinit's own command line is what LightningCLI gets
        _FitCLI(init=init, args=["fit", "--config", str(path), *overrides, *fit_args])
    return 0
