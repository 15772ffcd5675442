"""See the signal before training: per layer, how the forward signal and the backward gradient scale
under an init, and how close the network is to dynamical isometry.

For one scheme and gain: initialize the model, run one forward and backward pass of ``training_step`` on
a real batch, and record in forward order the std of each layer's output and of the gradient reaching
that output. The pass runs inside a real ``Trainer.fit`` stopped after the first backward (before any
optimizer step), so ``training_step`` sees what it sees in training: ``self.trainer``, ``self.log``,
``self.global_step``, the batch-transfer hooks, manual optimization's ``manual_backward``. On a few
samples, the singular values of the input-output Jacobian tell how far the network is from dynamical
isometry (all singular values near 1; Saxe et al. 2014, Pennington et al. 2017).
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from autoinit import data
from autoinit.detect import is_layer, move_to, run_model, stream_stds
from autoinit.errors import AutoInitError, one_line
from autoinit.initialize import init_model
from autoinit.noise import quiet_measuring_fit
from autoinit.schemes.registry import get_scheme

# A signal that shrinks or grows by more than this factor between the first and the last layer is
# flagged; beyond PRESCREEN_FACTOR the init is hopeless (the tuner's pre-screen drops it).
FLAG_FACTOR = 1e2
PRESCREEN_FACTOR = 1e4


@dataclass
class LayerStats:
    name: str
    layer_type: str
    out_std: float
    grad_std: float | None
    flag: str = ""


@dataclass
class SignalStats:
    """What one init does to the signal, layer by layer."""

    scheme: str
    gain: float
    layers: list[LayerStats] = field(default_factory=list)
    loss: float = math.nan
    jacobian_sv: list[float] | None = None  # singular values of the input-output Jacobian, one sample
    error: str = ""  # why the scheme could not initialize this model
    note: str = ""  # e.g. activations from module order because the sample input did not work
    stream: list[float] = field(default_factory=list)  # residual stream std after each residual sum

    @property
    def forward_ratio(self) -> float:
        """Last layer's output std over the first layer's."""
        return _ratio(self.layers[-1].out_std, self.layers[0].out_std) if self.layers else math.nan

    @property
    def backward_ratio(self) -> float:
        """First layer's gradient std over the last layer's: how the gradient scales on its way back."""
        grads = [lay.grad_std for lay in self.layers if lay.grad_std is not None]
        return _ratio(grads[0], grads[-1]) if len(grads) >= 2 else math.nan

    @property
    def isometry_spread(self) -> float | None:
        """std of log10 of the Jacobian's singular values: 0 at perfect dynamical isometry."""
        if not self.jacobian_sv:
            return None
        logs = torch.tensor(self.jacobian_sv).clamp_min(1e-30).log10()
        return float(logs.std()) if logs.numel() > 1 else 0.0

    @property
    def hopeless(self) -> bool:
        """The signal vanishes or explodes by orders of magnitude over depth, forward or backward."""
        return any(
            not math.isfinite(r) or r < 1 / PRESCREEN_FACTOR or r > PRESCREEN_FACTOR
            for r in (self.forward_ratio, self.backward_ratio)
            if not math.isnan(r)
        ) or not math.isfinite(self.loss)


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return math.inf if a > 0 else math.nan
    return a / b


def _first_float_tensor(x: Any) -> torch.Tensor | None:
    """The first float tensor of a tensor, a sequence or a mapping (a Hugging Face ``ModelOutput``'s logits)."""
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else None
    if isinstance(x, (list, tuple)):
        return _first_float_tensor(x[0]) if x else None
    if isinstance(x, Mapping):
        return next((t for v in x.values() if (t := _first_float_tensor(v)) is not None), None)
    return None


class _Stop(Exception):
    """Ends the measuring fit after the first backward, before any optimizer step."""


class _OneBatch:
    """An iterable yielding one batch: the train "dataloader" of the measuring fit."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def __iter__(self) -> Iterator[Any]:
        yield self.batch


class _Probe(pl.Callback):
    """Initializes the model on the first training batch (after the fit's setup, configure_model and
    batch-transfer hooks), records each layer's output in forward order and, after the first backward,
    the loss and the gradients, then stops the fit."""

    def __init__(
        self, scheme: str, gain: float, seed: int, model_input: Any, batch_to_input: Any, options: dict[str, Any]
    ) -> None:
        self.scheme, self.gain, self.seed, self.options = scheme, gain, seed, options
        self.model_input, self.batch_to_input = model_input, batch_to_input
        self.layers: dict[str, nn.Module] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.stream: list[float] = []
        self.loss: float | None = None
        self.note = ""
        self.handles: list[Any] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, i: int) -> None:
        info = get_scheme(self.scheme)
        # The input is measured on (the Jacobian, the stream) for every scheme; a scheme that draws without
        # looking at data (default, as_built) is initialized without it.
        if self.model_input is None:
            self.model_input = getattr(pl_module, "example_input_array", None)
        if self.model_input is None:
            try:
                self.model_input = data.model_input(batch, pl_module, self.batch_to_input)
            except data.NoModelInput as exc:
                if info.needs_data:
                    raise
                if info.uses_sample:
                    self.note = f"activations from module order: {exc.reason}"
        sample = self.model_input if info.uses_sample else None
        try:
            init_model(pl_module, self.scheme, self.gain, sample_input=sample, seed=self.seed, **self.options)
        except AutoInitError as exc:
            if sample is None or info.needs_data:
                raise
            # the sample did not work; detecting activations is all it was for
            init_model(pl_module, self.scheme, self.gain, sample_input=None, seed=self.seed, **self.options)
            self.note, self.model_input = f"activations from module order: {exc}", None
        if self.model_input is not None:
            with contextlib.suppress(Exception):  # extra information: the layer table stands without it
                self.stream = [std for _, _, std in stream_stds(pl_module, self.model_input)]
        self.layers = {name: m for name, m in pl_module.named_modules() if is_layer(m) and name}
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers.items()]

    def _hook(self, name: str):
        def fn(module: nn.Module, args: tuple, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor) and out.requires_grad and name not in self.outputs:
                out.retain_grad()
                self.outputs[name] = out

        return fn

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self.loss = float(loss.detach())

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise _Stop

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        # reached only when no backward ran: automatic optimization skips it for a None loss
        if pl_module.automatic_optimization:
            raise AutoInitError(
                f"{type(pl_module).__name__}.training_step returned None: inspect needs the loss; return it "
                "(or a dict with a 'loss' key)"
            )
        raise AutoInitError(
            f"{type(pl_module).__name__}.training_step (manual optimization) called no manual_backward: "
            "inspect measures the gradient of the first manual_backward"
        )

    def remove_hooks(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@contextlib.contextmanager
def _checked_training_step(model: pl.LightningModule) -> Iterator[None]:
    """Wrap ``training_step`` so a return value automatic optimization cannot use (None, a dict without
    "loss") is one line naming the fix (Lightning would skip the step or raise a longer message)."""
    original = model.training_step

    def training_step(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        if model.automatic_optimization and (out is None or (isinstance(out, dict) and "loss" not in out)):
            got = "None" if out is None else f"a dict without 'loss' (keys: {', '.join(map(str, out))})"
            raise AutoInitError(
                f"{type(model).__name__}.training_step returned {got}: inspect needs the loss; return it "
                "(or a dict with a 'loss' key)"
            )
        return out

    # An instance attribute shadows the method for this fit only (and steps the data hooks already run,
    # so a datamodule-less model is not prepared and set up a second time).
    shadowed = {"training_step": training_step}
    for hook in ("prepare_data", "setup"):
        if data.has_run(model, hook):
            shadowed[hook] = lambda *a, **k: None
    for name, fn in shadowed.items():
        object.__setattr__(model, name, fn)
    try:
        yield
    finally:
        for name in shadowed:
            model.__dict__.pop(name, None)


def _device_kwargs(model: nn.Module) -> dict[str, Any]:
    p = next(model.parameters(), None)
    if p is not None and p.device.type == "cuda":
        return {"accelerator": "gpu", "devices": [p.device.index or 0]}
    return {"accelerator": "cpu", "devices": 1}


def measure(
    model: pl.LightningModule,
    batch: Any,
    model_input: Any = None,
    scheme: str = "auto",
    gain: float = 1.0,
    seed: int = 0,
    jacobian_samples: int = 1,
    batch_to_input: str | data.BatchToInput | None = None,
    **options: Any,
) -> SignalStats:
    """Initialize ``model`` with ``scheme`` and measure one forward/backward pass of its training step on
    ``batch`` (as a train loader yields it), inside a real ``Trainer.fit`` stopped before the optimizer
    step. ``model_input``: what to trace for activations (default: ``example_input_array``, else
    :func:`autoinit.data.model_input` of the batch with ``batch_to_input``). A failure in the user's code is one line
    (AutoInitError)."""
    probe = _Probe(scheme, gain, seed, model_input, batch_to_input, options)
    with tempfile.TemporaryDirectory() as root, quiet_measuring_fit():
        trainer = pl.Trainer(
            **_device_kwargs(model),
            max_steps=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[probe],
            default_root_dir=root,
        )
        try:
            with _checked_training_step(model):
                trainer.fit(model, train_dataloaders=_OneBatch(batch))
        except _Stop:
            pass
        except AutoInitError:
            raise
        except Exception as exc:
            raise AutoInitError(
                f"one training step of {type(model).__name__} under '{scheme}' failed: {one_line(exc)}: fix the "
                "model so that Trainer.fit runs"
            ) from exc
        finally:
            probe.remove_hooks()
    if probe.loss is None:  # not reached in practice: the probe raises first
        raise AutoInitError(f"{type(model).__name__}.training_step ran no backward: inspect needs the loss")
    stats = SignalStats(scheme, gain, loss=probe.loss, note=probe.note, stream=probe.stream)
    finite = math.isfinite(stats.loss)
    for name, out in probe.outputs.items():
        grad = None if out.grad is None or not finite else float(out.grad.float().std())
        stats.layers.append(
            LayerStats(name, type(probe.layers[name]).__name__, float(out.detach().float().std()), grad)
        )
    model.zero_grad(set_to_none=True)
    first_out = stats.layers[0].out_std if stats.layers else 0.0
    grads = [lay.grad_std for lay in stats.layers if lay.grad_std]
    last_grad = grads[-1] if grads else None
    for lay in stats.layers:
        r = _ratio(lay.out_std, first_out)
        if r < 1 / FLAG_FACTOR:
            lay.flag = "signal vanishes"
        elif r > FLAG_FACTOR:
            lay.flag = "signal explodes"
        if lay.grad_std is not None and last_grad:
            g = _ratio(lay.grad_std, last_grad)
            if g < 1 / FLAG_FACTOR:
                lay.flag = (lay.flag + "; " if lay.flag else "") + "gradient vanishes"
            elif g > FLAG_FACTOR:
                lay.flag = (lay.flag + "; " if lay.flag else "") + "gradient explodes"
    x = _first_float_tensor(probe.model_input)
    if jacobian_samples and x is not None:
        p = next(model.parameters(), None)
        x = x if p is None else x.to(p.device)
        try:
            stats.jacobian_sv = jacobian_singular_values(model, x[:jacobian_samples])
        except Exception as exc:  # the forward on one sample alone: the table stands without it
            stats.note = "; ".join(filter(None, [stats.note, f"no Jacobian: {one_line(exc)}"]))
    return stats


def jacobian_singular_values(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Singular values of d model(x) / d x for the first sample (model in eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    try:
        sample = x[:1].detach()

        def f(inp: torch.Tensor) -> torch.Tensor:
            out = _first_float_tensor(run_model(model, inp))  # a ModelOutput's logits
            if out is None:
                raise AutoInitError("the model's output holds no float tensor")
            return out.reshape(-1)

        with torch.enable_grad():
            jac = torch.autograd.functional.jacobian(f, sample)
        jac = jac.reshape(jac.shape[0], -1).double()
        return torch.linalg.svdvals(jac).tolist()
    finally:
        model.train(was_training)


def sample_batch(model: pl.LightningModule, datamodule: pl.LightningDataModule | None) -> tuple[Any, Any]:
    """A real training batch (on the model's device) and the model input inside it: see
    :func:`autoinit.data.first_batch` and :func:`autoinit.data.model_input`."""
    batch = data.first_batch(model, datamodule)
    p = next(model.parameters(), None)
    if p is not None:
        batch = move_to(batch, p.device)
    example = getattr(model, "example_input_array", None)
    return batch, example if example is not None else data.model_input(batch, model)


def inspect_schemes(
    config, schemes: list[str], gain: float, seed: int = 0, batch_to_input: str | data.BatchToInput | None = None
) -> list[SignalStats]:
    """Measure every scheme on the config's model and the first batch of its data. The model is built
    and its data prepared once; before each scheme its parameters and buffers are restored to the built
    state. An error in a scheme (it cannot initialize this model) is recorded with it; an error in the
    user's code, the same for every scheme, is raised once (AutoInitError)."""
    pl.seed_everything(config.settings.data_seed, verbose=False)
    model, datamodule = config.build()
    batch = data.first_batch(model, datamodule)
    built = copy.deepcopy(model.state_dict())
    results = []
    for scheme in schemes:
        pl.seed_everything(config.settings.data_seed, verbose=False)
        model.load_state_dict(built, strict=False)  # strict=False: layers configure_model adds later
        try:
            results.append(measure(model, batch, None, scheme, gain, seed, batch_to_input=batch_to_input))
        except AutoInitError as exc:
            results.append(SignalStats(scheme, gain, error=str(exc)))
    errors = {r.error for r in results}
    if results and all(r.error for r in results) and len(errors) == 1:
        raise AutoInitError(results[0].error)
    return results


def render(results: list[SignalStats], console) -> None:
    """Per scheme, a table of layers in forward order with their flags, then a summary table."""
    from rich.table import Table

    for st in results:
        if not st.layers:
            console.print(f"{st.scheme}: {st.error or 'no layer reached'}", style="dim", markup=False, soft_wrap=True)
            continue
        if st.note:
            console.print(f"{st.scheme}: note: {st.note}", markup=False, style="dim", soft_wrap=True)
        table = Table(title=f"{st.scheme} gain={st.gain:g}: loss {st.loss:.4g}", title_justify="left")
        for col in ("#", "layer", "type", "output std", "grad std", "flag"):
            table.add_column(col, justify="right" if "std" in col or col == "#" else "left")
        for i, lay in enumerate(st.layers):
            table.add_row(
                str(i),
                lay.name,
                lay.layer_type,
                f"{lay.out_std:.3g}",
                "" if lay.grad_std is None else f"{lay.grad_std:.3g}",
                f"[red]{lay.flag}[/red]" if lay.flag else "",
            )
        console.print(table)
        if st.stream:
            blocks = " → ".join(f"{v:.3g}" for v in st.stream)
            line = f"{st.scheme}: residual stream std after each of {len(st.stream)} blocks: {blocks}"
            console.print(line, markup=False, soft_wrap=True)
    summary = Table(
        title="summary: forward = last/first output std, backward = first/last gradient std, "
        "isometry = std of log10 Jacobian singular values (0 = perfect)"
    )
    for col in ("scheme", "loss", "forward", "backward", "isometry", "verdict"):
        summary.add_column(col, justify="left" if col in ("scheme", "verdict") else "right")
    for st in results:
        if not st.layers:
            continue
        spread = st.isometry_spread
        verdict = "[red]hopeless[/red]" if st.hopeless else ("flagged" if any(lay.flag for lay in st.layers) else "ok")
        summary.add_row(
            st.scheme,
            f"{st.loss:.4g}",
            f"{st.forward_ratio:.3g}",
            f"{st.backward_ratio:.3g}",
            "" if spread is None else f"{spread:.3g}",
            verdict,
        )
    console.print(summary)


def plot(results: list[SignalStats], path) -> None:
    """inspect.png: output std and gradient std against depth, one line per scheme, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_out, ax_grad) = plt.subplots(1, 2, figsize=(12, 5))
    for st in results:
        if not st.layers:
            continue
        depth = range(len(st.layers))
        ax_out.plot(depth, [max(lay.out_std, 1e-30) for lay in st.layers], marker=".", label=st.scheme)
        grads = [(i, lay.grad_std) for i, lay in enumerate(st.layers) if lay.grad_std]
        if grads:
            ax_grad.plot(*zip(*grads, strict=True), marker=".", label=st.scheme)
    for ax, title in ((ax_out, "std of each layer's output"), (ax_grad, "std of the gradient reaching it")):
        ax.set_yscale("log")
        ax.set_xlabel("layer (forward order)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_out.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
