import math

import pytest
import torch
import torch.nn.functional as F
from helpers import HandRMSNorm
from torch import nn

from autoinit import init_model
from autoinit.activations import Activation
from autoinit.detect import from_module_order, trace
from autoinit.nn import CReLU


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        h = F.relu(self.a(x))
        h = torch.tanh(self.norm(self.b(h)))  # norm in between: tanh still follows b
        h = F.leaky_relu(self.c(h).view(-1, 8), 0.3)
        return self.d(h).sigmoid()


def test_functional_activations_detected():
    graph = trace(Functional(), torch.randn(3, 4))
    assert graph.order == ["a", "b", "c", "d"]
    assert graph.follows == {
        "a": Activation("relu"),
        "b": Activation("tanh"),
        "c": Activation("leaky_relu", 0.3),
        "d": Activation("sigmoid"),
    }
    assert graph.fed_by["b"] == Activation("relu")


def test_module_activations_through_batchnorm_and_dropout():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.1), nn.GELU(), nn.Flatten(), nn.Linear(4 * 36, 2)
    )
    graph = trace(model, torch.randn(2, 3, 8, 8))
    assert graph.follows["0"] == Activation("gelu")
    assert graph.activation_after("5").is_linear


def test_crelu_detected_and_feeds_next_layer():
    model = nn.Sequential(nn.Linear(4, 4), CReLU(), nn.Linear(8, 2))
    for graph in (trace(model, torch.randn(2, 4)), from_module_order(model)):
        assert graph.follows["0"] == Activation("crelu")
        assert graph.fed_by["2"] == Activation("crelu")


def test_module_order_fallback_without_sample():
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.Linear(4, 2), nn.ReLU())
    graph = from_module_order(model)
    assert graph.source == "module order"
    assert graph.follows == {"0": Activation("tanh"), "3": Activation("relu")}


def test_layers_inside_transformer_layer_traced():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    graph = trace(layer, torch.randn(2, 3, 8))
    assert graph.follows["linear1"] == Activation("relu")  # F.relu held as an attribute, not a module
    assert "self_attn" in graph.order


class ResidualBlock(nn.Module):
    """A ResNet basic block with a strided downsample conv on the shortcut, its sum written four ways."""

    def __init__(self, order: str, downsample: bool = True):
        super().__init__()
        self.order = order
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        out = 8 if downsample else 4
        self.conv1 = nn.Conv2d(4, out, 3, stride=2 if downsample else 1, padding=1)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(4, out, 1, stride=2), nn.BatchNorm2d(out)) if downsample else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.stem(x))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idt = self.downsample(x)
        if self.order == "idt + out":
            out = idt + out
        elif self.order == "out + idt":
            out = out + idt
        elif self.order == "torch.add(idt, out)":
            out = torch.add(idt, out)
        else:  # idt += out
            idt += out
            out = idt
        return self.relu(out)


ORDERS = ["idt + out", "out + idt", "torch.add(idt, out)", "idt += out"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("downsample", [True, False])
def test_activation_after_residual_sum_follows_both_branches(order, downsample):
    graph = trace(ResidualBlock(order, downsample), torch.randn(2, 3, 8, 8))
    relu = Activation("relu")
    assert graph.follows["conv2"] == relu
    if downsample:
        assert graph.follows["downsample.0"] == relu


def test_residual_weights_do_not_depend_on_operand_order():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    weights = []
    for order in ORDERS:
        model = ResidualBlock(order)
        report = init_model(model, "auto", sample_input=x, seed=0)
        assert report["downsample.0.weight"].scheme == "auto→kaiming_normal"
        assert report["conv2.weight"].scheme == "auto→kaiming_normal"
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert all(torch.equal(weights[0][n], w[n]) for w in weights[1:] for n in w)
    # He et al.'s σ = a/√n_in with a = √2 for the ReLU after the sum: downsample n_in = 4·1·1, conv2 8·3·3
    assert float(weights[0]["downsample.0.weight"].std()) == pytest.approx(math.sqrt(2 / 4), rel=0.25)
    assert float(weights[0]["conv2.weight"].std()) == pytest.approx(math.sqrt(2 / 72), rel=0.1)


class Scale(nn.Module):
    """A learned per-channel scale (LayerScale): a 1-D weight, but no normalization."""

    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.full((d,), 0.5))

    def forward(self, x):
        return self.weight * x


class PreNormBlocks(nn.Module):
    """Two pre-norm residual MLP blocks, x + W2·silu(W1·norm(x)), their norm a hand-written RMSNorm."""

    def __init__(self, d=16, norm=HandRMSNorm):
        super().__init__()
        self.norms = nn.ModuleList([norm(d) for _ in range(2)])
        self.ups = nn.ModuleList([nn.Linear(d, 2 * d) for _ in range(2)])
        self.downs = nn.ModuleList([nn.Linear(2 * d, d) for _ in range(2)])

    def forward(self, x):
        for norm, up, down in zip(self.norms, self.ups, self.downs, strict=True):
            x = x + down(F.silu(up(norm(x))))
        return x


def test_hand_written_norm_is_a_norm_by_its_values():
    from autoinit.detect import is_norm

    assert is_norm(HandRMSNorm(8)) and is_norm(nn.LayerNorm(8))
    zero = HandRMSNorm(8)  # a zero γ (an x·(1+γ) norm's identity; or a zero-γ init): still a norm
    nn.init.zeros_(zero.weight)
    garbage = HandRMSNorm(8)  # memory not yet initialized
    garbage.weight.data.fill_(float("nan"))
    assert is_norm(zero) and is_norm(garbage)
    assert torch.count_nonzero(zero.weight) == 0 and torch.isnan(garbage.weight).all()  # given back as they were
    assert not is_norm(Scale(8)) and not is_norm(nn.Linear(8, 8)) and not is_norm(nn.ReLU())


def test_pre_norm_branches_with_a_hand_written_norm_are_normalized():
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    graph = trace(PreNormBlocks(), x)
    assert graph.summary().endswith("pre-norm")
    assert graph.branches[0].norms == ["norms.0"]
    # auto's table: a normalized branch keeps its activation's scheme, unscaled (no Fixup or 1/√(2L) factor)
    report = init_model(PreNormBlocks(), "auto", sample_input=x, seed=0)
    assert report["downs.0.weight"].scheme == "auto→orthogonal"
    assert report["ups.0.weight"].scheme == "auto→kaiming_normal"
    # a LayerScale is no norm: those branches stay unnormalized and get auto's depth factors
    graph = trace(PreNormBlocks(norm=Scale), x)
    assert graph.summary().endswith("no norm")


class LossFirst(nn.Module):
    """Hugging Face's output layout: with labels, the loss (a 0-dim tensor) comes before the logits."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x, labels=None):
        logits = self.head(torch.relu(self.body(x)))
        if labels is None:
            return {"logits": logits}
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def test_head_found_when_the_loss_comes_first():
    # a dict batch's labels reach forward (the callback passes every key forward takes): the loss is no
    # prediction, so the head is the layer behind the first output that keeps a batch dimension
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    assert trace(LossFirst(), {"x": x}).head == "head"
    assert trace(LossFirst(), {"x": x, "labels": y}).head == "head"
