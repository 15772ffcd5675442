"""Training data outside a ``Trainer.fit``: the one place autoinit gets a batch on its own.

``autoinit inspect`` and the tuner's checks need a real training batch before any fit runs. They get it
the way Lightning's fit would: the data hooks in Lightning's order (``prepare_data`` on the datamodule then
on the model, local rank 0 only unless ``prepare_data_per_node`` is False, where only node 0 runs it; then
``setup("fit")`` on both), the train dataloader from the datamodule if it defines one and from the model
otherwise, iterated the way the fit loop does (a ``CombinedLoader`` in ``max_size_cycle`` mode, so a dict
or list of loaders gives the same batch as in training).

Every failure is one line (:class:`~autoinit.errors.AutoInitError`) naming the problem and the fix; an
exception raised in the user's hooks is quoted with :func:`~autoinit.errors.one_line`.

API: :func:`prepare`, :func:`train_loader`, :func:`next_batch`, :func:`first_batch` (the three in one),
:func:`model_input` / :func:`default_batch_to_input` (the model's input inside a batch),
:func:`load_callable` (a callable or a dotted import path), :func:`replayable`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.seed import isolate_rng
from torch.utils.data import DataLoader, IterableDataset

from autoinit.errors import AutoInitError, one_line
from autoinit.noise import quiet_combined_loader

BatchToInput = Callable[[Any], Any]

_FIXES = (
    "set example_input_array on the LightningModule, or pass batch_to_input (a function, or its dotted "
    "import path, from a training batch to forward's input)"
)

# The hooks already run in this process, per object (keyed by id, the object held weakly so a finished
# model or datamodule is not kept alive): each hook runs once per object, as in one fit.
_DONE: dict[str, weakref.WeakValueDictionary[int, Any]] = {
    "prepare_data": weakref.WeakValueDictionary(),
    "setup": weakref.WeakValueDictionary(),
}


def defines(obj: Any, hook: str) -> bool:
    """Whether the user's class defines ``hook`` (the base-class no-ops do not count)."""
    if isinstance(obj, (pl.LightningModule, pl.LightningDataModule)):
        return is_overridden(hook, obj)
    return callable(getattr(obj, hook, None))


def has_run(obj: Any, hook: str) -> bool:
    """Whether :func:`prepare` has already run ``hook`` (``"prepare_data"`` or ``"setup"``) on ``obj``."""
    return _DONE[hook].get(id(obj)) is obj


def _call_user(obj: Any, hook: str, *args: Any) -> Any:
    try:
        return getattr(obj, hook)(*args)
    except AutoInitError:
        raise
    except Exception as exc:
        shown = ", ".join(repr(a) for a in args)
        raise AutoInitError(
            f"{type(obj).__name__}.{hook}({shown}) failed: {one_line(exc)}: fix it so that Trainer.fit can run it"
        ) from exc


def _runs_prepare_data(obj: Any) -> bool:
    """Lightning's rule: local rank 0 of every node if ``prepare_data_per_node`` (the default), else only
    local rank 0 of node 0. A single process is both."""
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    node_rank = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", os.environ.get("SLURM_NODEID", 0))))
    per_node = getattr(obj, "prepare_data_per_node", True)
    return local_rank == 0 and (per_node or node_rank == 0)


def prepare(model: pl.LightningModule, datamodule: pl.LightningDataModule | None = None) -> None:
    """Run the data hooks as ``Trainer.fit`` does, each at most once per object in this process:
    ``prepare_data`` (datamodule, then model; rank rule above; other ranks wait at a barrier when
    ``torch.distributed`` is initialized), then ``setup("fit")`` (datamodule, then model)."""
    hosts = [h for h in (datamodule, model) if h is not None]
    for h in hosts:
        if defines(h, "prepare_data") and not has_run(h, "prepare_data"):
            if _runs_prepare_data(h):
                _call_user(h, "prepare_data")
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()  # the other ranks' setup reads what rank 0 downloaded
            _DONE["prepare_data"][id(h)] = h
    for h in hosts:
        if defines(h, "setup") and not has_run(h, "setup"):
            _call_user(h, "setup", "fit")
            _DONE["setup"][id(h)] = h


def train_loader(model: pl.LightningModule, datamodule: pl.LightningDataModule | None = None) -> Any:
    """The train dataloader ``Trainer.fit(model, datamodule=datamodule)`` would use: the datamodule's
    ``train_dataloader()`` if it defines one, else the model's. Runs :func:`prepare` first."""
    prepare(model, datamodule)
    host = datamodule if datamodule is not None and defines(datamodule, "train_dataloader") else model
    if not defines(host, "train_dataloader"):
        if datamodule is not None:
            raise AutoInitError(
                f"no training data: neither {type(datamodule).__name__} nor {type(model).__name__} defines "
                "train_dataloader(): add one to the datamodule"
            )
        raise AutoInitError(
            f"no training data: {type(model).__name__} defines no train_dataloader() and no datamodule was "
            "given: add a datamodule (the config's data section) or a train_dataloader() to the model"
        )
    return _call_user(host, "train_dataloader")


def replayable(loader: Any) -> bool:
    """Whether iterating ``loader`` again starts the same data over, so drawing one batch takes nothing
    from training: a ``DataLoader`` over a map-style dataset (or a collection of them). An
    ``IterableDataset``, a generator or any other iterable may be a one-shot stream."""
    if isinstance(loader, CombinedLoader):
        return all(replayable(x) for x in loader.flattened)
    if isinstance(loader, Mapping):
        return bool(loader) and all(replayable(x) for x in loader.values())
    if isinstance(loader, (list, tuple)):
        return bool(loader) and all(replayable(x) for x in loader)
    return isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset)


def next_batch(loader: Any, what: str = "the train dataloader") -> Any:
    """The first batch of ``loader`` as the fit loop would see it (several loaders combined in
    ``max_size_cycle`` mode), drawn with every RNG state preserved. ``what`` names the loader in errors."""
    with isolate_rng(), quiet_combined_loader():  # training's shuffling stays untouched
        combined = loader if isinstance(loader, CombinedLoader) else CombinedLoader(loader, "max_size_cycle")
        try:
            iterator = iter(combined)
            out = next(iterator)
        except StopIteration:
            raise AutoInitError(
                f"{what} yields no batch (an empty dataset, or fewer samples than batch_size with "
                "drop_last=True): give it at least one full batch"
            ) from None
        except AutoInitError:
            raise
        except Exception as exc:
            raise AutoInitError(
                f"{what} failed loading its first batch: {one_line(exc)}: fix the dataset or dataloader"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                combined.reset()  # shut down worker processes now, not at garbage collection
    return out[0] if isinstance(out, tuple) and len(out) == 3 else out


def first_batch(model: pl.LightningModule, datamodule: pl.LightningDataModule | None = None) -> Any:
    """The first training batch of ``Trainer.fit(model, datamodule=datamodule)``, as the loader yields it
    (not moved to a device, no batch-transfer hooks applied): :func:`prepare`, :func:`train_loader`,
    :func:`next_batch`."""
    return next_batch(train_loader(model, datamodule))


def load_callable(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """``spec`` itself if it is callable, else the object at the dotted import path ``spec``
    (``"mypkg.data.to_input"``, as LightningCLI configs name callables); a one-line error otherwise."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip() or "." not in spec.strip():
        raise AutoInitError(f"expected a function or a dotted import path such as 'mypkg.data.to_input', got {spec!r}")
    parts = spec.strip().split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise AutoInitError(f"cannot import '{spec}': {one_line(exc)}") from exc
        except Exception as exc:
            raise AutoInitError(f"cannot import '{spec}': importing {module_name} failed: {one_line(exc)}") from exc
        for name in parts[i:]:
            if not hasattr(obj, name):
                raise AutoInitError(f"cannot import '{spec}': '{module_name}' has no attribute '{name}'")
            obj = getattr(obj, name)
        if not callable(obj):
            raise AutoInitError(f"'{spec}' is a {type(obj).__name__}, not a function")
        return obj
    raise AutoInitError(f"cannot import '{spec}': no module named '{parts[0]}' (is its folder on sys.path?)")


class NoModelInput(AutoInitError):
    """No model input could be found in a batch; ``reason`` is the problem without the fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}: {_FIXES}")
        self.reason = reason


def _forward_parameters(model: Any) -> dict[str, inspect.Parameter] | None:
    """forward's parameters that can be passed by keyword; None when it takes ``**kwargs`` (or has no
    signature to read)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {
        n: p
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _dict_input(batch: Mapping[Any, Any], model: Any) -> dict[str, Any]:
    params = None if model is None else _forward_parameters(model)
    if params is None:
        return dict(batch)
    kept = {k: v for k, v in batch.items() if k in params}
    keys = ", ".join(map(str, batch))
    if not kept:
        raise NoModelInput(
            f"a training batch is a dict with keys ({keys}) and {type(model).__name__}.forward takes none of "
            f"them ({', '.join(params) or 'no keyword arguments'})"
        )
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kept]
    if missing:
        raise NoModelInput(
            f"a training batch is a dict with keys ({keys}) and {type(model).__name__}.forward also needs "
            f"{', '.join(missing)}"
        )
    return kept


def default_batch_to_input(batch: Any, model: Any = None) -> Any:
    """The model input inside a training batch: a tensor is the input; a tuple or list → its first
    element; a dict → keyword arguments, restricted to the names ``model.forward`` takes (all keys when it
    takes ``**kwargs`` or no model is given). Anything else is passed to ``forward`` as is."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise NoModelInput(f"a training batch is an empty {type(batch).__name__}")
        batch = batch[0]
    if isinstance(batch, Mapping):
        return _dict_input(batch, model)
    return batch


def model_input(batch: Any, model: Any, batch_to_input: str | BatchToInput | None = None) -> Any:
    """What to call ``model`` with for ``batch``: ``batch_to_input(batch)`` (a callable or its dotted
    path) when given, else :func:`default_batch_to_input`. The result is used as Lightning uses
    ``example_input_array``: a tuple is unpacked as positional arguments, a dict as keyword arguments."""
    if batch_to_input is None:
        return default_batch_to_input(batch, model)
    fn = load_callable(batch_to_input)
    try:
        return fn(batch)
    except AutoInitError:
        raise
    except Exception as exc:
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}".lstrip(".")
        raise AutoInitError(f"batch_to_input ({name}) failed on a training batch: {one_line(exc)}") from exc
