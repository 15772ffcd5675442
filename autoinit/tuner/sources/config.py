"""A tune config: a LightningCLI fit config (model, data, trainer, optimizer, lr_scheduler) plus a
``tune`` section, parsed and instantiated by Lightning's own machinery (LightningCLI / jsonargparse)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningCLI

from autoinit import data
from autoinit.errors import AutoInitError, one_line
from autoinit.tuner.common.noise import quiet_lightning
from autoinit.tuner.sources.proxy import check_proxy_keys
from autoinit.tuner.sources.settings import PROXY_SECTIONS, Range, TuneSettings
from autoinit.tuner.sources.source import (
    DROPPED_CALLBACKS,
    describe_changes,
    flatten,
    trial_trainer_kwargs,
)
from autoinit.tuner.sources.trainer_keys import measured_trainer


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
    nested = re.fullmatch(r'Parser key "([^"]+)":', reason)
    if nested and reason in lines and lines.index(reason) + 1 < len(lines):
        # a class's argument of the wrong type: the argument, and the reason on the line below it
        reason = f"'{nested.group(1)}': {lines[lines.index(reason) + 1]}"
    subtypes, given = re.search(r"Subtypes: \[(.*)\]", text), re.search(r"Given value: (.*)", text)
    if subtypes and given and all(r.startswith("Expected a") for r in reasons):
        # a value of no type of a union (tune.gain: Range, list or float): each alternative's error would
        # name one type only
        names = re.sub(r"<class '(?:[\w.]*\.)?(\w+)'>", r"\1", subtypes.group(1))
        value = given.group(1).strip()
        finite = "" if value.lower().lstrip("+-") not in ("nan", "inf", "infinity") else " (not a finite number)"
        reason = f"got {value}{finite}, expected one of: {names}"
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


def add_import_paths(config_path: Path) -> None:
    """Make the user's modules importable as ``python -m`` and LightningCLI scripts do: the current
    directory first on ``sys.path`` (a console script does not put it there), and the config file's folder
    last (so a module next to the config imports, yet never shadows an installed package or a module of
    the current directory). Every process of a tune (workers, DDP ranks) builds its config here."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    folder = str(config_path.resolve().parent)
    if folder not in sys.path and folder != cwd:
        sys.path.append(folder)


# Tune keys renamed: the old name, and what the error says to use instead.
RENAMED_TUNE_KEYS = {"sampler": "tune.search: halving (the default), tpe, gp, random or grid"}


def _check_renamed(path: Path, content: dict, overrides: list[str]) -> None:
    """One line for a renamed tune key (on the command line argparse would take a prefix of another key:
    ``--tune.sampler`` for ``--tune.sampler_seed``)."""
    tune = content.get("tune") if isinstance(content.get("tune"), dict) else {}
    given = set(tune) | {o[len("--tune.") :].split("=")[0] for o in overrides if o.startswith("--tune.")}
    for old, new in RENAMED_TUNE_KEYS.items():
        if old in given:
            raise AutoInitError(f"config error in {path.name}: tune.{old} was renamed {new}")


def _read_yaml(path: Path) -> dict:
    """One-line errors for a file that is no usable YAML mapping, before jsonargparse reads it (its own
    messages lose the line of a syntax error and say "Unexpected config" for an empty file)."""
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise AutoInitError(f"{path.name} is not valid YAML{where}: {problem}: fix the syntax there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AutoInitError(f"cannot read the config file '{path}': {one_line(exc)}") from None
    if content is None:
        raise AutoInitError(
            f"{path.name} is empty: a tune config needs a model section (class_path, init_args), usually data, "
            "trainer and tune sections too: see configs/quickstart.yaml"
        )
    if not isinstance(content, dict):
        raise AutoInitError(
            f"{path.name} holds a {type(content).__name__}, not a mapping of sections: a tune config has "
            "model, data, trainer and tune keys at the top level (see configs/quickstart.yaml)"
        )
    return content


def _user_exception(exc: BaseException) -> BaseException | None:
    """The user's own exception behind a jsonargparse error (a class's ``__init__`` that raised): the last
    exception of the chain whose innermost frame is not jsonargparse's or Lightning's."""
    found = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        last = None
        while tb is not None:
            last, tb = tb, tb.tb_next
        filename = last.tb_frame.f_code.co_filename if last is not None else ""
        if last is not None and not re.search(r"[/\\](jsonargparse|lightning)[/\\]", filename):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _raised_in(exc: BaseException) -> str:
    """``Class.__init__`` where ``exc`` was raised, when the traceback shows it."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self") if frame.f_code.co_name == "__init__" else None
        if owner is not None:
            where = f"{type(owner).__name__}.__init__"
        tb = tb.tb_next
    return where


def _instantiation_error(exc: BaseException) -> str:
    user = _user_exception(exc)
    if user is None:
        return one_line(exc)
    where = _raised_in(user)
    return f"{where or 'building the model or data'} raised {one_line(user)}: fix the class or its init_args"


class TuneConfig:
    """A parsed tune config; :meth:`build` instantiates a fresh model and datamodule for each trial."""

    def __init__(self, path: str | Path, overrides: list[str] | None = None) -> None:
        self.path = Path(path)
        self.overrides = list(overrides or [])
        if not self.path.is_file():
            raise AutoInitError(f"no config file at '{self.path}': pass the path of a tune YAML (see configs/)")
        _check_renamed(self.path, _read_yaml(self.path), self.overrides)
        add_import_paths(self.path)
        # Each data hook host kind ("model", "datamodule") whose prepare_data ran in this process: the
        # download runs once per process, as in one fit, however many trials build fresh objects.
        self._prepared: set[str] = set()
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
                user = _user_exception(exc)
                reason = _instantiation_error(exc) if user is not None else _summarize_parse_error(exc)
                raise AutoInitError(f"config error in {self.path.name}: {reason}") from None
            except AutoInitError as exc:
                raise AutoInitError(f"config error in {self.path.name}: {exc}") from None
            except Exception as exc:  # a model/data __init__ that raises on these arguments
                raise AutoInitError(f"config error in {self.path.name}: {_instantiation_error(exc)}") from None
        tune = self.cli.config.get("tune")
        settings_args = tune.as_dict() if hasattr(tune, "as_dict") else dict(tune or {})
        try:
            self.settings = TuneSettings(**_ranges(settings_args))
        except TypeError as exc:
            raise AutoInitError(f"config error in the tune section: {exc}") from None
        accumulate = (self.cli.config.get("trainer") or {}).get("accumulate_grad_batches", 1)
        if isinstance(accumulate, int) and accumulate < 1:
            # Lightning takes it and fails inside the fit loop (ZeroDivisionError), in every trial
            raise AutoInitError(
                f"config error in {self.path.name}: trainer.accumulate_grad_batches must be a positive integer "
                f"(micro-batches per optimizer step; 1 = no accumulation), got {accumulate}"
            )
        if self.settings.proxy is not None:
            check_proxy_keys(self.settings.proxy, self.argument_keys(), f"config error in {self.path.name}")
        # A path that does not import fails now, not in the first trial.
        self.batch_to_input = None
        if self.settings.batch_to_input is not None:
            try:
                self.batch_to_input = data.load_callable(self.settings.batch_to_input)
            except AutoInitError as exc:
                raise AutoInitError(f"config error in {self.path.name}: tune.batch_to_input: {exc}") from None

    @property
    def study_name(self) -> str:
        return self.settings.study_name or self.path.stem

    @property
    def output(self) -> Path:
        return Path(self.settings.output or Path("autoinit-out") / self.study_name)

    def dump(self) -> dict[str, Any]:
        """The resolved config (after command-line overrides) as plain data."""
        return json.loads(json.dumps(self.cli.config.as_dict(), default=str))

    def _measured_data(self) -> dict[str, Any]:
        """The resolved config less what changes nothing a trial measures: the resumable tune keys
        (n_trials, storage, workers...), the trainer keys a trial sets itself (max_epochs, logger...) and
        the callbacks a trial drops; and where the config files are (``config``: their contents are what
        the rest holds, so the same file by another path or from another folder is the same study)."""
        data = self.dump()
        data.pop("config", None)
        resumable = TuneSettings.resumable_keys()
        data["tune"] = {k: v for k, v in data.get("tune", {}).items() if k not in resumable}
        trainer = measured_trainer(data.get("trainer") or {})
        callbacks = trainer.get("callbacks")
        if isinstance(callbacks, list):
            trainer["callbacks"] = [c for c in callbacks if _class_name(c) not in DROPPED_CALLBACKS]
        data["trainer"] = trainer
        return data

    def argument_keys(self) -> list[str]:
        """The model's and data's arguments as the config resolves them (``model.init_args.width``...)."""
        data = self.dump()
        flat = flatten({"model": data.get("model"), "data": data.get("data")})
        return [k for k in flat if k.startswith(PROXY_SECTIONS) and not k.endswith(".class_path")]

    def derive(self, changes: dict[str, Any], *, study_name: str, output: Path) -> TuneConfig:
        """This config with ``changes`` as command-line overrides (so worker processes and DDP ranks rebuild
        the same), no proxy, and the given study name and output."""
        extra = [f"--{key}={json.dumps(value)}" for key, value in changes.items()]
        extra += ["--tune.proxy=null", f"--tune.study_name={study_name}", f"--tune.output={output}"]
        try:
            return TuneConfig(self.path, [*self.overrides, *extra])
        except AutoInitError as exc:  # a value of the wrong type for its argument
            raise AutoInitError(f"tune.proxy: {exc}") from None

    def measured(self) -> dict[str, Any]:
        """Everything that changes what a trial measures, as ``{"dotted.key": value}``: what a study stores
        to tell a changed config on resume."""
        return flatten(self._measured_data())

    def sha256(self) -> str:
        """Hash of everything :meth:`measured` holds."""
        return hashlib.sha256(json.dumps(self._measured_data(), sort_keys=True).encode()).hexdigest()

    def changes_from(self, stored: dict[str, Any], limit: int = 3) -> str:
        """The keys whose value differs from a study's stored :meth:`measured` config ("" when none)."""
        return describe_changes(stored, self.measured(), limit)

    def trainer_kwargs(self) -> dict[str, Any]:
        return trial_trainer_kwargs(self.cli.config_init.get("trainer") or {})

    def logger(self) -> Any:
        """The trainer's logger as the config gives it (instantiated), or None."""
        return (self.cli.config_init.get("trainer") or {}).get("logger")

    def build(self) -> tuple[pl.LightningModule, pl.LightningDataModule | None]:
        """A fresh model and datamodule, with the config's optimizer and lr_scheduler attached. Their
        ``prepare_data`` runs once in this process for all the objects built (Lightning's rule: it
        downloads, it sets no state), whoever calls it — a Trainer's fit or :mod:`autoinit.data`;
        ``setup`` runs on each, as it fills the object's own state."""
        with quiet_lightning():
            try:
                self.cli.instantiate_classes()
            except AutoInitError:
                raise
            except Exception as exc:  # an __init__ that raises only on some builds (a changed seed)
                raise AutoInitError(f"config error in {self.path.name}: {_instantiation_error(exc)}") from None
        model, datamodule = self.cli.model, self.cli.datamodule
        for kind, host in (("model", model), ("datamodule", datamodule)):
            if host is not None and data.defines(host, "prepare_data"):
                once = functools.partial(_prepare_once, host.prepare_data, self._prepared, kind)
                object.__setattr__(host, "prepare_data", once)
        return model, datamodule


def _prepare_once(prepare_data: Any, done: set[str], kind: str) -> None:
    if kind not in done:
        prepare_data()
        done.add(kind)


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
