import torch
import torch.nn.functional as F
from torch import nn

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
