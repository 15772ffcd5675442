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


# ---- issue #10: bad inputs, one line each ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bias_std": -0.5}, "need bias_std >= 0"),
        ({"bias_std": "0.1"}, "need bias_std >= 0"),
        ({"seed": 2**70}, "seed must be a non-negative int below 2**64"),
        ({"seed": -1}, "seed must be a non-negative int below 2**64"),
        ({"scheme": "xavier_uniform", "fallback": "nonsense"}, "unknown option 'fallback' for scheme 'xavier_uniform'"),
        ({"scheme": "xavier_uniform", "recurrent": "whatever"}, "need recurrent to be one of 'orthogonal', 'scheme'"),
        ({"scheme": "he_normal"}, "did you mean 'kaiming_normal' with distribution='truncated_normal'?"),
        ({"scheme": "glorot_uniform"}, "did you mean 'xavier_uniform'?"),
    ],
)
def test_bad_input_is_one_line_error_issue_10(kwargs, message):
    with pytest.raises(AutoInitError) as err:
        init_model(_mlp(), **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_largest_seed_is_accepted():
    a, b = _mlp(), _mlp()
    init_model(a, "kaiming_normal", seed=2**64 - 1)
    init_model(b, "kaiming_normal", generator=torch.Generator().manual_seed(2**64 - 1))
    assert all(torch.equal(p, q) for p, q in zip(_state(a), _state(b), strict=True))


def test_lazy_module_without_sample_input_asks_for_a_forward_pass():
    model = nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 2))
    with pytest.raises(AutoInitError) as err:
        init_model(model, "kaiming_normal", seed=0)
    assert "'0.weight' is an uninitialized lazy parameter: run one forward pass" in str(err.value)
    assert "\n" not in str(err.value)


def test_lazy_module_is_materialized_by_sample_input_without_touching_the_global_rng():
    model = nn.Sequential(nn.LazyLinear(512), nn.ReLU(), nn.Linear(512, 2))
    x = torch.randn(4, 64)
    state = torch.random.get_rng_state()
    report = init_model(model, "kaiming_normal", sample_input=x, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model[0].weight.shape == (512, 64) and report["0.weight"].fan_in == 64
    assert float(model[0].weight.detach().std()) == pytest.approx(math.sqrt(2 / 64), rel=0.02)


def test_lazy_module_the_sample_does_not_reach():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 2), nn.LazyLinear(3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(AutoInitError, match=r"'unused\.weight' is still an uninitialized lazy parameter"):
        init_model(Branchy(), "kaiming_normal", sample_input=torch.randn(2, 4))


def test_user_scheme_that_returns_a_new_tensor_is_an_error():
    @register_scheme("returns_new_test")
    def returns_new(tensor: torch.Tensor, ctx: InitContext) -> torch.Tensor:
        return torch.randn(tensor.shape, generator=ctx.generator)

    @register_scheme("rebinds_test")
    def rebinds(tensor: torch.Tensor, ctx: InitContext) -> None:
        tensor = torch.zeros_like(tensor)  # the mistake under test

    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    for name in ("returns_new_test", "rebinds_test"):
        with pytest.raises(AutoInitError) as err:
            init_model(model, name)
        assert f"scheme '{name}'" in str(err.value) and "fill `tensor` in place (tensor.copy_(w)" in str(err.value)
        assert "\n" not in str(err.value)
    assert torch.equal(model.weight, before)


def test_user_scheme_returning_its_own_tensor_is_fine():
    @register_scheme("returns_self_test")
    def returns_self(tensor: torch.Tensor, ctx: InitContext) -> torch.Tensor:
        return torch.nn.init.constant_(tensor, 0.25)

    model = nn.Linear(4, 3)
    assert init_model(model, "returns_self_test")["weight"].scheme == "returns_self_test"
    assert torch.equal(model.weight, torch.full((3, 4), 0.25))


# ---- weights pinned to those before schemes became objects (the tuner's figures depend on them) ----------


def _pinned_models():
    from autoinit.nn import CReLU

    def mlp(act):
        torch.manual_seed(0)
        layers = [nn.Linear(8, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 3)]
        return nn.Sequential(*layers)

    def cnn():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(16, 16, 3, padding=1, groups=2),
            nn.Sigmoid(),
            nn.Flatten(),
            nn.Linear(16 * 16, 4),
        )

    class RNNNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = nn.Embedding(50, 16, padding_idx=0)
            self.lstm = nn.LSTM(16, 12, num_layers=2, bidirectional=True, batch_first=True)
            self.gru = nn.GRU(24, 8, batch_first=True)
            self.head = nn.Linear(8, 5)

        def forward(self, x):
            h, _ = self.lstm(self.emb(x))
            h, _ = self.gru(h)
            return self.head(torch.tanh(h))

    def crelu():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), CReLU(), nn.Linear(32, 16), CReLU(), nn.Linear(32, 3))

    g = torch.Generator().manual_seed(1)
    return {
        "sigmoid": (lambda: mlp(nn.Sigmoid), torch.randn(16, 8, generator=g)),
        "crelu": (crelu, torch.randn(16, 8, generator=torch.Generator().manual_seed(1))),
        "rnn": (RNNNet, torch.randint(0, 50, (4, 7), generator=torch.Generator().manual_seed(1))),
        "cnn": (cnn, torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(1))),
    }


PINNED = {  # sha256 of the state dict after init_model(model, scheme, sample_input=x, seed=0), before #9
    ("sigmoid", "default"): "eb366070ea085942",
    ("sigmoid", "auto"): "f22e6a3cc9a7d04c",
    ("sigmoid", "kaiming_normal"): "be79b227203f96c7",
    ("sigmoid", "kaiming_uniform"): "5d2a68c14187c5b5",
    ("sigmoid", "xavier_uniform"): "dd49f9d799d7e56d",
    ("sigmoid", "xavier_normal"): "d6a6142d6a897b69",
    ("sigmoid", "lecun_normal"): "be79b227203f96c7",
    ("sigmoid", "lecun_uniform"): "5d2a68c14187c5b5",
    ("sigmoid", "orthogonal"): "a2737cb67e8a2ce2",
    ("sigmoid", "lsuv"): "13eb6ef63dac4cee",
    ("sigmoid", "yam_chow"): "1a8643ef0d87d0bf",
    ("crelu", "looks_linear"): "e441b6c5f052105c",
    ("crelu", "lsuv"): "373ccd4cda68d358",
    ("rnn", "default"): "d5e5edc49a5b5eb4",
    ("rnn", "auto"): "902f04508d18d2d6",
    ("rnn", "kaiming_normal"): "4f7ce5285a9d2fe3",
    ("rnn", "orthogonal"): "5686717a5d28e243",
    ("rnn", "lsuv"): "a02b6dfc31791f3b",
    ("cnn", "default"): "e59413051b15aa19",
    ("cnn", "auto"): "b33ca1e13ea4623d",
    ("cnn", "delta_orthogonal"): "b22ae5746f45d69a",
    ("cnn", "yam_chow"): "7a8e198cc62b4df8",
}


@pytest.mark.parametrize(("model_name", "scheme"), sorted(PINNED))
def test_weights_bit_identical_to_before_schemes_became_objects(model_name, scheme):
    import hashlib

    build, x = _pinned_models()[model_name]
    model = build()
    init_model(model, scheme, sample_input=x, seed=0)
    state = model.state_dict()
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].contiguous().numpy().tobytes())
    assert h.hexdigest()[:16] == PINNED[(model_name, scheme)]
