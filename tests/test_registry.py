import re
from pathlib import Path

import pytest
import torch
from torch import nn

from autoinit import AutoInitError, init_model
from autoinit.schemes import DataUse, EmbeddingRule, Option, Scheme, get_scheme, register, register_scheme
from autoinit.schemes.docs import markdown_table
from autoinit.schemes.registry import builtin_scheme_names, check_options

BUILTIN_ORDER = [
    "as_built",
    "default",
    "auto",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier_uniform",
    "xavier_normal",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "delta_orthogonal",
    "looks_linear",
    "lsuv",
    "yam_chow",
]
RESIDUAL_ORDER = ["fixup", "zero_residual", "depth_scaled"]  # issue #13, registered after the others


def test_builtin_scheme_names_in_registration_order():
    assert builtin_scheme_names() == BUILTIN_ORDER + RESIDUAL_ORDER


def test_data_use_and_embedding_rule():
    assert [n for n in BUILTIN_ORDER if get_scheme(n).needs_data] == ["lsuv", "yam_chow"]
    assert [n for n in BUILTIN_ORDER if not get_scheme(n).uses_sample] == ["as_built", "default"]
    assert get_scheme("default").data is DataUse.NONE and get_scheme("auto").data is DataUse.OPTIONAL
    normal = [n for n in BUILTIN_ORDER if get_scheme(n).embeddings is EmbeddingRule.NORMAL]
    assert normal == ["auto", "orthogonal", "delta_orthogonal", "looks_linear", "lsuv", "yam_chow"]


@pytest.mark.parametrize("name", BUILTIN_ORDER)
def test_every_builtin_documents_formula_paper_and_example(name):
    scheme = get_scheme(name)
    assert scheme.formula and scheme.paper and re.fullmatch(rf'init_model\(\w+, "{name}".*\)', scheme.example)
    hook = scheme.fn or scheme.model_pass or scheme.keep
    assert hook is not None and scheme.example in hook.__doc__  # the docstring, as torch.nn.init's
    assert scheme.formula in scheme.doc and scheme.paper in scheme.doc and scheme.example in scheme.doc


def test_docs_scheme_table_is_generated_from_the_schemes():
    page = (Path(__file__).parent.parent / "docs" / "schemes.md").read_text()
    table = re.search(r"<!-- schemes-table[^>]*-->\n(.*?)<!-- /schemes-table -->", page, re.S)
    assert table is not None
    assert table.group(1) == markdown_table()


def test_schemes_package_has_no_import_cycle():
    from test_architecture import find_cycle, import_graph

    graph = import_graph()
    assert find_cycle({m: deps for m, deps in graph.items() if m.startswith("autoinit.schemes")}) is None
    # the registry imports no scheme: registration happens in autoinit.schemes.builtins alone
    assert {d for d in graph["autoinit.schemes.registry"] if d.startswith("autoinit.schemes")} == {
        "autoinit.schemes.base",
        "autoinit.schemes.options",
    }


# ---- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "options", "message"),
    [
        ("xavier_uniform", {"fallback": "nonsense"}, "unknown option 'fallback' for scheme 'xavier_uniform'"),
        ("xavier_uniform", {"recurrent": "whatever"}, "need recurrent to be one of 'orthogonal', 'scheme'"),
        ("kaiming_normal", {"bias_std": -0.1}, "need bias_std >= 0"),
        ("kaiming_normal", {"bias_std": "0.1"}, "need bias_std >= 0"),
        ("kaiming_normal", {"forget_bias": float("inf")}, "need forget_bias to be a finite number"),
        ("kaiming_normal", {"mode": "fan_avg"}, "need mode to be one of 'fan_in', 'fan_out'"),
        ("xavier_normal", {"distribution": "cauchy"}, "need distribution to be one of 'normal', 'truncated_normal'"),
        ("lsuv", {"max_iter": 0}, "need max_iter >= 1 (an int)"),
        ("lsuv", {"tol": -1}, "need tol > 0"),
        ("yam_chow", {"fallback": "lsuv"}, "need fallback to be a per-block scheme"),
        ("yam_chow", {"fallback": "default"}, "need fallback to be a per-block scheme"),
        ("yam_chow", {"mode": "fan_out", "fallback": "xavier_uniform"}, "unknown option 'mode' for scheme 'yam_chow'"),
        ("default", {"bias_std": 0.1}, "unknown option 'bias_std' for scheme 'default': it takes no options"),
    ],
)
def test_options_checked_by_name_and_value(scheme, options, message):
    with pytest.raises(AutoInitError) as err:
        check_options(get_scheme(scheme), options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_fallback_options_are_accepted():
    check_options(get_scheme("yam_chow"), {"fallback": "kaiming_normal", "mode": "fan_out"})
    check_options(get_scheme("yam_chow"), {"mode": "fan_out"})  # the default fallback, auto, takes mode


def test_fallback_scheme_options_reach_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 64), nn.Sigmoid(), nn.Linear(64, 2))
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    report = init_model(model, "yam_chow", sample_input=x, seed=0, fallback="kaiming_normal", mode="fan_out")
    assert report["0.weight"].scheme == "kaiming_normal" and report["2.weight"].scheme == "yam_chow"
    assert float(model[0].weight.detach().std()) == pytest.approx(2**0.5 / 256**0.5, rel=0.05)  # n = n_out


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("he_normal", "did you mean 'kaiming_normal' with distribution='truncated_normal'?"),
        ("he_uniform", "did you mean 'kaiming_uniform'?"),
        ("glorot_uniform", "did you mean 'xavier_uniform'?"),
        ("glorot_normal", "did you mean 'xavier_normal' with distribution='truncated_normal'?"),
        ("Glorot-Uniform", "did you mean 'xavier_uniform'?"),
        ("kaiming", "did you mean 'kaiming_normal'?"),
        ("kaiming_normal_", "did you mean 'kaiming_normal'"),
    ],
)
def test_other_libraries_names_are_suggested_not_aliased(name, suggestion):
    with pytest.raises(AutoInitError) as err:
        init_model(nn.Linear(3, 3), name)
    assert f"unknown scheme '{name}'" in str(err.value) and suggestion in str(err.value)


# ---- user schemes --------------------------------------------------------------------------------------


def _zero_last(pctx):
    last = list(pctx.weight_blocks())[-1]
    with torch.no_grad():
        last.tensor.zero_()
    pctx.relabel(last, "zero_last", "output layer zeroed")


def test_user_model_level_scheme_with_per_block_function():
    register_scheme("zero_last_test", formula="kaiming_normal, last layer 0", model_pass=_zero_last)(
        get_scheme("kaiming_normal").fn
    )
    a, b = (nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 3)) for _ in range(2))
    report = init_model(a, "zero_last_test", seed=0)
    init_model(b, "kaiming_normal", seed=0)
    assert torch.equal(a[0].weight, b[0].weight)  # the per-block pass is kaiming_normal's, bit for bit
    assert torch.count_nonzero(a[2].weight) == 0
    assert report["2.weight"].scheme == "zero_last" and report["2.weight"].note == "output layer zeroed"
    assert report["0.weight"].scheme == "zero_last_test"


def test_user_model_level_scheme_needing_data_and_checking_the_model():
    seen = {}

    def measure(pctx):
        seen["batch"] = pctx.sample_input.shape[0]
        for b in pctx.weight_blocks():
            pctx.annotate(b, f"batch of {seen['batch']}")

    def needs_two_layers(pctx):
        if len(list(pctx.weight_blocks())) < 2:
            raise AutoInitError("needs_two_test needs two layers")

    register(
        Scheme(
            name="needs_two_test",
            formula="orthogonal, then a note",
            fn=get_scheme("orthogonal").fn,
            model_pass=measure,
            check=needs_two_layers,
            data=DataUse.REQUIRED,
            options=(Option(name="alpha", check=lambda v: None if v in (1, 2) else "to be 1 or 2"),),
        )
    )
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    with pytest.raises(AutoInitError, match="measures the network on data"):
        init_model(model, "needs_two_test")
    with pytest.raises(AutoInitError, match="need alpha to be 1 or 2"):
        init_model(model, "needs_two_test", sample_input=torch.randn(5, 4), alpha=3)
    before = model[0].weight.detach().clone()
    with pytest.raises(AutoInitError, match="needs two layers"):
        init_model(nn.Linear(4, 2), "needs_two_test", sample_input=torch.randn(5, 4))
    report = init_model(model, "needs_two_test", sample_input=torch.randn(5, 4), seed=0, alpha=2)
    assert seen == {"batch": 5} and report["0.weight"].note == "batch of 5"
    assert not torch.equal(model[0].weight, before)
    w = model[0].weight.detach()  # orthogonal × tanh's gain 5/3: Wᵀ·W = (5/3)²·I (8 rows ≥ 4 columns)
    assert torch.allclose(w.T @ w, (5 / 3) ** 2 * torch.eye(4), atol=1e-5)


def test_model_only_scheme_runs_alone_and_is_no_fallback():
    def halve_defaults(pctx):
        with pctx.global_rng():
            for name in list(pctx.blocks):
                for b in pctx.blocks[name]:
                    pctx.record(b, "kept")

    register(Scheme(name="model_only_test", formula="keeps everything", model_pass=halve_defaults))
    model = nn.Linear(4, 2)
    before = model.weight.detach().clone()
    report = init_model(model, "model_only_test")  # no "cannot be a fallback" error
    assert torch.equal(model.weight, before) and report["weight"].scheme == "kept"
    with pytest.raises(AutoInitError, match="need fallback to be a per-block scheme"):
        init_model(model, "yam_chow", sample_input=torch.randn(3, 4), fallback="model_only_test")


def test_scheme_object_is_frozen_and_validated():
    with pytest.raises(AutoInitError, match="no fn, pick, model_pass or keep"):
        Scheme(name="empty_test", formula="")
    with pytest.raises(AutoInitError, match="identifier"):
        Scheme(name="has space", formula="", fn=get_scheme("orthogonal").fn)
    with pytest.raises(AttributeError):
        get_scheme("orthogonal").formula = "changed"  # type: ignore[misc]
