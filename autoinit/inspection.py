"""See the signal before training: per layer, how the forward signal and the backward gradient scale
under an init, and how close the network is to dynamical isometry.

For one scheme and gain: initialize the model, run one forward and backward pass of ``training_step`` on
a real batch, and record in forward order the std of each layer's output and of the gradient reaching
that output. On a few samples, the singular values of the input-output Jacobian tell how far the network
is from dynamical isometry (all singular values near 1; Saxe et al. 2014, Pennington et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from autoinit.detect import is_layer, move_to, run_model
from autoinit.initialize import init_model

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
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else None
    if isinstance(x, (list, tuple)):
        return _first_float_tensor(x[0]) if x else None
    return None


def measure(
    model: pl.LightningModule,
    batch: Any,
    model_input: Any,
    scheme: str,
    gain: float = 1.0,
    seed: int = 0,
    jacobian_samples: int = 1,
    **options: Any,
) -> SignalStats:
    """Initialize ``model`` with ``scheme`` and measure one forward/backward pass of its training step."""
    init_model(model, scheme, gain, sample_input=model_input, seed=seed, **options)
    stats = SignalStats(scheme, gain)
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []
    handles = []

    def hook(name: str):
        def fn(module: nn.Module, args: tuple, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor) and out.requires_grad and name not in outputs:
                out.retain_grad()
                outputs[name] = out
                order.append(name)

        return fn

    layers = {name: m for name, m in model.named_modules() if is_layer(m) and name}
    for name, m in layers.items():
        handles.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad():
            loss = model.training_step(batch, 0)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            stats.loss = float(loss.detach())
            if math.isfinite(stats.loss):
                loss.backward()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for name in order:
        out = outputs[name]
        grad = None if out.grad is None else float(out.grad.float().std())
        stats.layers.append(LayerStats(name, type(layers[name]).__name__, float(out.detach().float().std()), grad))
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
    x = _first_float_tensor(model_input)
    if jacobian_samples and x is not None:
        stats.jacobian_sv = jacobian_singular_values(model, x[:jacobian_samples])
    return stats


def jacobian_singular_values(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Singular values of d model(x) / d x for the first sample (model in eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    try:
        sample = x[:1].detach()

        def f(inp: torch.Tensor) -> torch.Tensor:
            return run_model(model, inp).reshape(-1)

        with torch.enable_grad():
            jac = torch.autograd.functional.jacobian(f, sample)
        jac = jac.reshape(jac.shape[0], -1).double()
        return torch.linalg.svdvals(jac).tolist()
    finally:
        model.train(was_training)


def sample_batch(model: pl.LightningModule, datamodule: pl.LightningDataModule | None) -> tuple[Any, Any]:
    """A real training batch and the model input inside it (the first element of an (x, y) batch)."""
    from autoinit.callback import default_batch_to_input

    if datamodule is not None:
        datamodule.setup("fit")
        batch = next(iter(datamodule.train_dataloader()))
    else:
        batch = next(iter(model.train_dataloader()))
    device = next(model.parameters()).device
    batch = move_to(batch, device)
    return batch, default_batch_to_input(batch)


def inspect_schemes(config, schemes: list[str], gain: float, seed: int = 0) -> list[SignalStats]:
    """Measure every scheme on a fresh copy of the config's model and one real batch of its data."""
    from autoinit.errors import AutoInitError

    results = []
    for scheme in schemes:
        pl.seed_everything(config.settings.data_seed, verbose=False)
        model, datamodule = config.build()
        batch, model_input = sample_batch(model, datamodule)
        try:
            results.append(measure(model, batch, model_input, scheme, gain, seed))
        except AutoInitError as exc:
            results.append(SignalStats(scheme, gain, error=str(exc)))
    return results


def render(results: list[SignalStats], console) -> None:
    """Per scheme, a table of layers in forward order with their flags, then a summary table."""
    from rich.table import Table

    for st in results:
        if not st.layers:
            console.print(f"[dim]{st.scheme}: {st.error or 'no layer reached'}[/dim]")
            continue
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
