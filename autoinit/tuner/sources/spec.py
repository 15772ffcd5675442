"""A tune described by Python objects, for :func:`autoinit.tune`: the model as a class (with its arguments)
or a zero-argument factory, the data as a datamodule (instance, class or factory) or train dataloaders,
Trainer arguments as a dict. It is a :class:`~autoinit.tuner.sources.source.TrialSource`, so it runs through the
same study, storage, loop and outputs as a YAML config.

Trials need a fresh model each, so a model instance is refused. Data that is not rebuilt per trial (an
instance, dataloaders) is used as-is only when iterating it again, after the same seeding, gives the same
batches in the same order (checked): otherwise trials would differ in their data, not only in their init.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.seed import isolate_rng
from torch import nn

from autoinit import data as data_access
from autoinit.errors import AutoInitError, one_line
from autoinit.noise import quiet_combined_loader
from autoinit.tuner.sources.proxy import check_proxy_keys
from autoinit.tuner.sources.settings import Range, TuneSettings
from autoinit.tuner.sources.source import (
    describe_changes,
    flatten,
    is_dropped_callback,
    trial_trainer_kwargs,
)
from autoinit.tuner.sources.trainer_keys import measured_trainer

SPEC_FILE = "autoinit_spec.yaml"
# Batches compared when checking that data used as-is replays in the same order.
ORDER_CHECK_BATCHES = 3

ModelArg = Any  # a LightningModule class, or a zero-argument callable returning a fresh LightningModule
DataArg = Any  # a LightningDataModule instance, class or zero-argument factory


class _Loaders(pl.LightningDataModule):
    """Train dataloaders given directly, as a datamodule (used as-is by every trial)."""

    def __init__(self, loaders: Any) -> None:
        super().__init__()
        self.loaders = loaders

    def train_dataloader(self) -> Any:
        return self.loaders


def _dotted(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _source_sha(fn: Any) -> str | None:
    try:
        return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
    except (OSError, TypeError):  # defined in an interactive session, or a builtin
        return None


def _tensor_sha(t: torch.Tensor) -> str:
    raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(raw + str((t.dtype, tuple(t.shape))).encode()).hexdigest()[:16]


def plain(value: Any) -> Any:
    """``value`` as JSON data that is the same in every process: tensors by content, classes and
    functions by import path, other objects by their class."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return {"tensor": _tensor_sha(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Range):
        return dataclasses.asdict(value)
    if inspect.isclass(value) or inspect.isfunction(value):
        return _dotted(value)
    return f"<{_dotted(type(value))}>"


def _is_yaml_data(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_yaml_data(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_yaml_data(v) for k, v in value.items())
    return False


def _batch_digest(batch: Any) -> str:
    return hashlib.sha256(json.dumps(plain(batch), sort_keys=True).encode()).hexdigest()[:16]


def _not_importable(cls: Any) -> str | None:
    """Why a fresh process cannot import ``cls`` by its path, or None."""
    module, qualname = getattr(cls, "__module__", None), getattr(cls, "__qualname__", "")
    if module in (None, "__main__", "builtins") or module.startswith("__"):
        return f"{qualname} is defined in __main__ (a script or a notebook)"
    if "<locals>" in qualname:
        return f"{qualname} is defined inside a function"
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return f"{_dotted(cls)} cannot be imported by its path"
    return None if obj is cls else f"{_dotted(cls)} imports as another object"


class PythonSpec:
    """What trials are built from, given as Python objects (see :func:`autoinit.tune`)."""

    def __init__(
        self,
        model: ModelArg,
        *,
        settings: TuneSettings,
        model_args: Mapping[str, Any] | None = None,
        datamodule: DataArg = None,
        data_args: Mapping[str, Any] | None = None,
        train_dataloaders: Any = None,
        trainer: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.model, self.model_args = model, dict(model_args or {})
        self.model_is_class = _check_model(model, model_args)
        if datamodule is not None and train_dataloaders is not None:
            raise AutoInitError("autoinit.tune: pass datamodule or train_dataloaders, not both")
        self.data, self.data_args = datamodule, dict(data_args or {})
        if train_dataloaders is not None:
            self.data = _Loaders(train_dataloaders)
        self.data_kind = _check_data(self.data, data_args)
        if trainer is not None and not isinstance(trainer, Mapping):
            raise AutoInitError(
                f"autoinit.tune(trainer=...) takes a dict of Trainer arguments, got a {type(trainer).__name__}: "
                'e.g. trainer={"accelerator": "cpu", "precision": "bf16-mixed"}'
            )
        self.trainer = dict(trainer or {})
        self._structure: str | None = None
        self._order: list[str] | None = None
        self._model_name = ""
        if settings.proxy is not None:
            check_proxy_keys(settings.proxy, self.argument_keys(), "autoinit.tune")

    # ---- the TrialSource protocol ------------------------------------------------------------------
    @property
    def study_name(self) -> str:
        return self.settings.study_name or self._default_name()

    @property
    def output(self) -> Path:
        return Path(self.settings.output or Path("autoinit-out") / self.study_name)

    @property
    def path(self) -> Path:
        """A tune YAML equivalent to this spec, written into the output folder, for worker processes and
        DDP ranks; a one-line error when the model or data cannot be rebuilt in a fresh process."""
        why = self.not_reimportable()
        if why is not None:
            raise AutoInitError(
                f"tune.workers > 1 and multi-device trials rebuild the model in fresh processes from its import "
                f"path, and {why}: define the LightningModule (and datamodule) in an importable module, pass the "
                "classes with plain model_args/data_args, or run with workers=1 on one device"
            )
        path = self.output / SPEC_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tune_file = self.dump()
        # the storage URL may hold a password: subprocesses get it through their environment
        # (storage.subprocess_args), and the file is the user's alone
        tune_file["tune"].pop("storage", None)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file of a previous run may have had another mode
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(tune_file, sort_keys=False))
        return path

    @property
    def overrides(self) -> list[str]:
        return []

    def build(self) -> tuple[pl.LightningModule, pl.LightningDataModule | None]:
        model = self.model(**self.model_args) if self.model_is_class else self.model()
        if not isinstance(model, pl.LightningModule):
            raise AutoInitError(
                f"the model factory returned a {type(model).__name__}, not a LightningModule: return a fresh "
                "LightningModule from it"
            )
        return model, self._build_data()

    def trainer_kwargs(self) -> dict[str, Any]:
        return trial_trainer_kwargs(self.trainer)

    def logger(self) -> Any:
        return self.trainer.get("logger")

    @property
    def batch_to_input(self) -> Any:
        """``tune.batch_to_input`` loaded (None: the default rule)."""
        path = self.settings.batch_to_input
        return None if path is None else data_access.load_callable(path)

    def measured(self) -> dict[str, Any]:
        """What :meth:`sha256` hashes, as ``{"dotted.key": value}``: stored with the study to name a change."""
        return flatten(self._measured_data())

    def changes_from(self, stored: dict[str, Any], limit: int = 3) -> str:
        return describe_changes(stored, self.measured(), limit)

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self._measured_data(), sort_keys=True).encode()).hexdigest()

    def _measured_data(self) -> dict[str, Any]:
        """What a trial measures: the model (its class and arguments, or its factory's source, and
        the module structure it builds), the data (its class and arguments or factory, or for data used as-is
        its first batches), the trainer arguments a trial uses, and the non-resumable tune keys."""
        model: dict[str, Any] = {"structure": self.structure()}
        if self.model_is_class:
            model.update(cls=_dotted(self.model), args=plain(self.model_args))
        else:
            model.update(factory=_dotted(self.model), source=_source_sha(self.model))
        if self.data_kind == "none":
            data: Any = None
        elif self.data_kind == "class":
            data = {"cls": _dotted(self.data), "args": plain(self.data_args)}
        elif self.data_kind == "factory":
            data = {"factory": _dotted(self.data), "source": _source_sha(self.data)}
        else:
            data = {"type": _dotted(type(self.data)), "batches": self.data_order()}
        trainer = measured_trainer(self.trainer)
        if isinstance(trainer.get("callbacks"), list):
            trainer["callbacks"] = [c for c in trainer["callbacks"] if not is_dropped_callback(c)]
        resumable = TuneSettings.resumable_keys()
        tune = {k: v for k, v in dataclasses.asdict(self.settings).items() if k not in resumable}
        return {"model": model, "data": data, "trainer": plain(trainer), "tune": plain(tune)}

    def dump(self) -> dict[str, Any]:
        """The spec as a tune config (LightningCLI's class_path/init_args form where it can be)."""
        out: dict[str, Any] = {}
        if self.model_is_class:
            out["model"] = {"class_path": _dotted(self.model), "init_args": plain(self.model_args)}
        else:
            out["model"] = {"factory": _dotted(self.model)}
        if self.data_kind == "class":
            out["data"] = {"class_path": _dotted(self.data), "init_args": plain(self.data_args)}
        elif self.data_kind != "none":
            out["data"] = {"given": plain(self.data)}
        out["trainer"] = plain(self.trainer)
        tune = plain(dataclasses.asdict(self.settings))
        tune["study_name"], tune["output"] = self.study_name, str(self.output)
        out["tune"] = tune
        return out

    def argument_keys(self) -> list[str]:
        """The model class's and datamodule class's arguments, as ``model.init_args.<name>`` and
        ``data.init_args.<name>`` (none for a factory or data given as an object)."""
        keys = [f"model.init_args.{n}" for n in _arguments(self.model)] if self.model_is_class else []
        if self.data_kind == "class":
            keys += [f"data.init_args.{n}" for n in _arguments(self.data)]
        return keys

    def derive(self, changes: dict[str, Any], *, study_name: str, output: Path) -> PythonSpec:
        """A spec of the same model and data with the arguments ``changes`` set (dotted keys), no proxy, and
        the given study name and output."""
        derived = copy.copy(self)
        derived.model_args, derived.data_args = dict(self.model_args), dict(self.data_args)
        for key, value in changes.items():
            section, _, name = key.partition(".init_args.")
            (derived.model_args if section == "model" else derived.data_args)[name] = value
        derived.settings = dataclasses.replace(self.settings, proxy=None, study_name=study_name, output=str(output))
        derived._structure, derived._order, derived._model_name = None, None, ""
        return derived

    # ---- checks --------------------------------------------------------------------------------------
    def check(self) -> None:
        """Before any trial: the factory gives a fresh LightningModule each call, and data used as-is
        replays the same batches in the same order. One-line errors."""
        first, _ = self.build()
        second, _ = self.build()
        if first is second:
            raise AutoInitError(
                "the model factory returned the same object twice: trials need a fresh model each (or one "
                "trial's training carries into the next, and your model is changed): build it inside the "
                "factory, e.g. lambda: MyModel(...)"
            )
        self._model_name = type(first).__name__
        self._structure = _structure_of(first)
        if self.data_kind in ("instance", "loaders"):
            self.data_order(first)

    def structure(self) -> str:
        if self._structure is None:
            self._structure = _structure_of(self.build()[0])
        return self._structure

    def data_order(self, model: pl.LightningModule | None = None) -> list[str]:
        """Digests of the first batches of data used as-is; a one-line error when a second pass, after the
        same seeding, gives other batches or another order."""
        if self._order is None:
            model = model if model is not None else self.build()[0]
            first, second = self._first_batches(model), self._first_batches(model)
            if first != second:
                what = "the train dataloaders" if self.data_kind == "loaders" else type(self.data).__name__
                raise AutoInitError(
                    f"{what} gave other batches when iterated again after the same seeding (a one-shot stream, "
                    "a DataLoader with its own generator, random augmentation with its own RNG), so trials would "
                    "differ in their data: pass the datamodule class with data_args, or a factory, so each trial "
                    "builds its data fresh"
                )
            self._order = first
        return self._order

    def not_reimportable(self) -> str | None:
        """Why worker processes could not rebuild this spec from a YAML config, or None."""
        if not self.model_is_class:
            return "the model is given as a factory, which a fresh process cannot import"
        why = _not_importable(self.model)
        if why is None and not _is_yaml_data(self.model_args):
            why = "model_args hold objects that are not plain data (numbers, strings, lists, dicts)"
        if why is None and self.data_kind in ("instance", "loaders", "factory"):
            why = "the data is given as an object or a factory, which a fresh process cannot import"
        if why is None and self.data_kind == "class":
            why = _not_importable(self.data)
            if why is None and not _is_yaml_data(self.data_args):
                why = "data_args hold objects that are not plain data"
        if why is None and not _is_yaml_data(self.trainer):
            why = "the trainer arguments hold objects (callbacks, loggers): give them by name in a YAML config"
        return why

    @contextmanager
    def importable_in_subprocesses(self) -> Iterator[None]:
        """While inside: PYTHONPATH holds the folders the model's and data's modules were imported from, so
        worker processes started in another folder import them too."""
        import os

        roots = [r for cls in (self.model, self.data) if (r := _import_root(cls))]
        old = os.environ.get("PYTHONPATH")
        parts = [*roots, *(old.split(os.pathsep) if old else [])]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old

    # ---- helpers -----------------------------------------------------------------------------------------
    def _default_name(self) -> str:
        if not self._model_name:
            self._model_name = self.model.__name__ if self.model_is_class else type(self.build()[0]).__name__
        return self._model_name

    def _build_data(self) -> pl.LightningDataModule | None:
        if self.data_kind == "none":
            return None
        if self.data_kind == "class":
            return self.data(**self.data_args)
        if self.data_kind == "factory":
            dm = self.data()
            if not isinstance(dm, pl.LightningDataModule):
                raise AutoInitError(
                    f"the datamodule factory returned a {type(dm).__name__}, not a LightningDataModule: return "
                    "one (or pass train_dataloaders=...)"
                )
            return dm
        return self.data

    def _first_batches(self, model: pl.LightningModule) -> list[str]:
        with isolate_rng(), quiet_combined_loader():
            pl.seed_everything(self.settings.data_seed, verbose=False)
            loader = data_access.train_loader(model, self.data)
            combined = loader if isinstance(loader, CombinedLoader) else CombinedLoader(loader, "max_size_cycle")
            out = []
            try:
                for i, batch in enumerate(combined):
                    if i >= ORDER_CHECK_BATCHES:
                        break
                    out.append(_batch_digest(batch[0] if isinstance(batch, tuple) and len(batch) == 3 else batch))
            except Exception as exc:
                raise AutoInitError(
                    f"the train dataloader failed: {one_line(exc)}: fix the dataset or dataloader"
                ) from exc
        return out


def _check_model(model: Any, model_args: Mapping[str, Any] | None) -> bool:
    """True for a class, False for a factory; a one-line error for anything else."""
    if isinstance(model, nn.Module):
        name = type(model).__name__
        raise AutoInitError(
            f"autoinit.tune got a {name} instance: trials need a fresh model each (training one model for every "
            f"trial would carry one trial into the next, and change yours): pass the class, "
            f"autoinit.tune({name}, model_args={{...}}), or a factory, autoinit.tune(lambda: {name}(...))"
        )
    if inspect.isclass(model):
        if not issubclass(model, pl.LightningModule):
            raise AutoInitError(
                f"autoinit.tune needs a LightningModule class, got {model.__name__}: wrap the network in a "
                "LightningModule with training_step and configure_optimizers"
            )
        return True
    if callable(model):
        if model_args:
            raise AutoInitError(
                "model_args go with a model class; a factory takes no arguments: call autoinit.tune(MyModel, "
                "model_args={...}) or put the arguments inside the factory"
            )
        return False
    raise AutoInitError(
        f"autoinit.tune needs a LightningModule class or a zero-argument factory, got {type(model).__name__}"
    )


def _check_data(data: Any, data_args: Mapping[str, Any] | None) -> str:
    """none, class, factory, instance or loaders; a one-line error for anything else."""
    if data_args and not inspect.isclass(data):
        raise AutoInitError(
            "data_args go with a datamodule class: autoinit.tune(..., datamodule=MyData, data_args={...})"
        )
    if data is None:
        return "none"
    if isinstance(data, _Loaders):
        return "loaders"
    if isinstance(data, pl.LightningDataModule):
        return "instance"
    if inspect.isclass(data):
        if not issubclass(data, pl.LightningDataModule):
            raise AutoInitError(
                f"datamodule={data.__name__} is not a LightningDataModule class: pass one, or the dataloaders "
                "as train_dataloaders=..."
            )
        return "class"
    if isinstance(data, torch.utils.data.DataLoader):
        raise AutoInitError("a DataLoader goes in train_dataloaders=..., not datamodule=...")
    if callable(data):
        return "factory"
    raise AutoInitError(
        f"datamodule must be a LightningDataModule (instance, class or factory), got {type(data).__name__}"
    )


def _arguments(cls: Any) -> list[str]:
    """The names a class's ``__init__`` takes by keyword."""
    params = inspect.signature(cls.__init__).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds and p.name != "self"]


def _structure_of(model: nn.Module) -> str:
    """The module tree and parameter shapes: a changed architecture changes it."""
    shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    return hashlib.sha256((repr(model) + repr(shapes)).encode()).hexdigest()


def _import_root(cls: Any) -> str | None:
    module = sys.modules.get(getattr(cls, "__module__", "") or "")
    file = getattr(module, "__file__", None) if module is not None and inspect.isclass(cls) else None
    if not file:
        return None
    depth = cls.__module__.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    return str(Path(file).resolve().parents[depth])
