import math

import pytest
import torch
from torch import nn

import autoinit
from autoinit import AutoInitError, InitContext, init_model, list_schemes, register_scheme

ALL_BUILTIN = {
    "auto",
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "delta_orthogonal",
    "looks_linear",
    "yam_chow",
    "lsuv",
}


def _mlp(depth=4, width=32, act=nn.Tanh):
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(nn.Linear(8, width), act(), *layers, nn.Linear(width, 3))


def _state(model):
    return [p.detach().clone() for p in model.parameters()]


def test_list_schemes_has_every_builtin():
    assert set(list_schemes()) >= ALL_BUILTIN


@pytest.mark.parametrize("scheme", sorted(ALL_BUILTIN - {"looks_linear", "delta_orthogonal"}))
def test_same_seed_bit_identical_other_seed_differs(scheme):
    x = torch.randn(16, 8)
    a, b, c = _mlp(), _mlp(), _mlp()
    init_model(a, scheme, sample_input=x, seed=7)
    init_model(b, scheme, sample_input=x, seed=7)
    init_model(c, scheme, sample_input=x, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(_state(a), _state(b), strict=False))
    assert not all(torch.equal(p, q) for p, q in zip(_state(a), _state(c), strict=False))


def test_generator_argument_is_used():
    a, b = _mlp(), _mlp()
    init_model(a, "kaiming_normal", generator=torch.Generator().manual_seed(3))
    init_model(b, "kaiming_normal", generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(_state(a), _state(b), strict=False))


def test_include_exclude_and_frozen():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    before = _state(model)
    report = init_model(model, "kaiming_normal", seed=0, exclude="4.*")
    assert torch.equal(model[0].weight, before[0]) and "frozen" in report["0.weight"].note
    assert torch.equal(model[4].weight, before[4]) and report["4.weight"].note == "excluded"
    assert not torch.equal(model[2].weight, before[2])
    report = init_model(model, "kaiming_normal", seed=0, include=["0.*"])
    assert not torch.equal(model[0].weight, before[0])  # frozen but included by name
    assert report["2.weight"].scheme is None


def test_uncovered_parameter_is_reported_not_skipped_silently():
    class WithRaw(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.pos = nn.Parameter(torch.full((5, 4), 7.0))

        def forward(self, x):
            return self.fc(x) + self.pos[: x.shape[0]]

    model = WithRaw()
    report = init_model(model, "xavier_uniform", seed=0)
    assert "no rule for WithRaw.pos" in report["pos"].note
    assert torch.equal(model.pos, torch.full((5, 4), 7.0))


def test_tied_weights_initialized_once():
    emb = nn.Embedding(10, 6)
    head = nn.Linear(6, 10, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    report = init_model(model, "kaiming_normal", seed=0)
    assert [r.name for r in report] == ["emb.weight"]


def test_meta_device_then_to_empty_initializes_in_place():
    with torch.device("meta"):
        model = _mlp()
    with pytest.raises(AutoInitError, match="to_empty"):
        init_model(model)
    model.to_empty(device="cpu")
    ptrs = [p.data_ptr() for p in model.parameters()]
    init_model(model, "kaiming_normal", seed=0)
    assert [p.data_ptr() for p in model.parameters()] == ptrs
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert float(model[0].weight.detach().std()) == pytest.approx(5 / 3 / math.sqrt(8), rel=0.15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_model_on_gpu_initialized_there():
    model = _mlp().cuda()
    init_model(model, "orthogonal", seed=0, sample_input=torch.randn(4, 8))
    assert all(p.is_cuda for p in model.parameters())


def test_register_scheme_then_use_it():
    @register_scheme("constant_test", formula="w = g / n_in")
    def constant(tensor: torch.Tensor, ctx: InitContext) -> None:
        tensor.fill_(ctx.gain / ctx.fan_in)

    model = nn.Linear(5, 3)
    report = init_model(model, "constant_test", gain=2.0)
    assert torch.allclose(model.weight, torch.full((3, 5), 0.4))
    assert "constant_test" in list_schemes() and report["weight"].scheme == "constant_test"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "kaiming_norml"}, "unknown scheme 'kaiming_norml': did you mean 'kaiming_normal'"),
        ({"scheme": "xavier_uniform", "mode": "fan_out"}, "unknown option 'mode' for scheme 'xavier_uniform'"),
        ({"gain": -1.0}, "gain must be a positive finite number"),
        ({"gain": float("nan")}, "gain must be a positive finite number"),
        ({"seed": "abc"}, "seed must be a non-negative int"),
        ({"sample_input": torch.randn(3, 5)}, "forward pass on sample_input failed"),
        ({"scheme": "lsuv", "sample_input": torch.randn(3, 8), "tol": 0}, "tol > 0"),
    ],
)
def test_bad_input_is_one_line_error(kwargs, message):
    with pytest.raises(AutoInitError) as err:
        init_model(_mlp(), **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_not_a_module():
    with pytest.raises(AutoInitError, match=r"torch\.nn\.Module"):
        init_model("model")


def test_public_api_names():
    for name in ("init_model", "list_schemes", "register_scheme", "InitReport"):
        assert hasattr(autoinit, name)
