"""Issue #13: residual structure traced, residual schemes (fixup, zero_residual, depth_scaled), auto's
residual rule, the head option, tied parameters, and the residual templates."""

import math

import pytest
import torch
from helpers import HandRMSNorm
from torch import nn

from autoinit import AutoInitError, init_model
from autoinit.activations import Activation, gain
from autoinit.detect import stream_stds, trace
from autoinit.schemes import DataUse, get_scheme
from autoinit.schemes.docs import markdown_table

L, M, WIDTH = 8, 2, 256
X = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))


class ResMLP(nn.Module):
    """L residual blocks of m = 2 layers, no normalization; the sum written ``x = x + f(x)`` or ``x += f(x)``."""

    def __init__(self, blocks: int = L, width: int = WIDTH, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.stem = nn.Linear(16, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)) for _ in range(blocks)
        )
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            if self.inplace:
                x += block(x)
            else:
                x = x + block(x)
        return torch.log_softmax(self.head(x), -1)  # a one-input op after the head: still the head


class TorchvisionBlock(nn.Module):
    """torchvision's BasicBlock, as written there: in-place ReLU, ``out += identity``."""

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(TorchvisionBlock(8, 8), TorchvisionBlock(8, 8))
        self.layer2 = nn.Sequential(TorchvisionBlock(8, 16, 2), TorchvisionBlock(16, 16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


IMAGES = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _std(t: torch.Tensor) -> float:
    return float(t.detach().std())


# ---- the tracer ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("inplace", [False, True], ids=["x = x + f(x)", "x += f(x)"])
def test_residual_mlp_structure(inplace):
    graph = trace(ResMLP(inplace=inplace), X)
    assert len(graph.branches) == L and {b.stream for b in graph.branches} == {0}
    b3 = graph.branches[3]
    assert b3.layers == ["blocks.3.0", "blocks.3.2"] and b3.outputs == ["blocks.3.2"] and b3.m == M
    assert not b3.pre_norm and not b3.post_norm and b3.shortcut == []
    role = graph.role("blocks.3.0")
    assert (role.branch, role.kind, role.L, role.m, role.normalized) == (3, "inner", L, M, False)
    assert graph.role("blocks.3.2").writes_stream
    assert graph.role("stem") is None and graph.role("head") is None
    assert graph.head == "head"
    assert graph.summary() == "residual: 8 branches (L=8), m=2, no norm"


def test_torchvision_resnet_structure_with_downsample_shortcut():
    graph = trace(TinyResNet(), IMAGES)
    assert len(graph.branches) == 4 and graph.stream_length(0) == 4  # one stream through the downsample
    down = graph.branches[2]
    assert down.layers == ["layer2.0.conv1", "layer2.0.conv2"] and down.outputs == ["layer2.0.conv2"]
    assert down.shortcut == ["layer2.0.downsample.0"] and down.output_norm == "layer2.0.bn2"
    assert down.norms == ["layer2.0.bn1", "layer2.0.bn2"] and down.pre_norm and not down.post_norm
    assert graph.role("layer2.0.bn2").kind == "output_norm" and graph.role("layer2.0.bn1").kind == "norm"
    assert graph.role("layer2.0.downsample.0").kind == "shortcut"
    assert graph.head == "fc"


@pytest.mark.parametrize(("norm_first", "pre", "post"), [(True, True, False), (False, False, True)])
def test_transformer_pre_and_post_norm(norm_first, pre, post):
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    model = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
    graph = trace(model, torch.randn(2, 5, 16))
    assert len(graph.branches) == 6
    assert all(b.pre_norm == pre and b.post_norm == post for b in graph.branches)
    attn = graph.branches[2]
    assert attn.layers == ["layers.1.self_attn", "layers.1.self_attn.out_proj"]
    assert attn.outputs == ["layers.1.self_attn.out_proj"]  # MultiheadAttention writes through out_proj
    assert graph.role("layers.1.self_attn.out_proj").writes_stream and graph.role("layers.1.self_attn").m == 2


def test_sums_that_are_not_residual():
    class NotResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(10, 8), nn.Embedding(6, 8)
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, t):
            x = self.tok(t) + self.pos(torch.arange(t.shape[1]))  # two unrelated tensors
            return self.a(x) + self.b(x)  # two paths of one layer each: no identity side

    graph = trace(NotResidual(), torch.randint(0, 10, (2, 6)))
    assert graph.branches == [] and graph.summary() == ""
    assert graph.head is None and "a sum" in graph.head_why


class MaskedAttention(nn.Module):
    """Pre-LN blocks whose attention adds one causal mask, made once per forward, to every block's logits."""

    def __init__(self, blocks: int = 3, width: int = 16) -> None:
        super().__init__()
        self.inp = nn.Linear(16, width)
        self.ln1 = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.qkv = nn.ModuleList(nn.Linear(width, 3 * width) for _ in range(blocks))
        self.proj = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.ln2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(blocks))
        self.fc1 = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(blocks))
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        x = self.inp(x)
        t = x.shape[1]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for k in range(len(self.qkv)):
            q, key, v = self.qkv[k](self.ln1[k](x)).chunk(3, -1)
            logits = q @ key.transpose(-1, -2) + mask
            x = x + self.proj[k](torch.softmax(logits, -1) @ v)
            x = x + self.fc2[k](torch.relu(self.fc1[k](self.ln2[k](x))))
        return self.head(x)


def test_an_attention_mask_shared_by_every_block_is_no_residual_stream():
    # Block k's logits derive from the mask through the earlier blocks' outputs; the mask enters those
    # branches from the side, so `logits + mask` is not a residual connection.
    graph = trace(MaskedAttention(), torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(0)))
    assert [b.layers for b in graph.branches] == [
        [f"{a}.{k}", f"{b}.{k}"] for k in range(3) for a, b in (("qkv", "proj"), ("fc1", "fc2"))
    ]
    assert graph.summary() == "residual: 6 branches (L=6), m=2, pre-norm"


def _tiny_gpt2(layers: int = 3):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=32, n_layer=layers, n_head=2, bos_token_id=0, eos_token_id=0
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


IDS = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(0))


def test_gpt2_branches_end_in_the_conv1d_projections():
    graph = trace(_tiny_gpt2(), IDS)
    h = "transformer.h"
    assert [b.layers for b in graph.branches] == [
        [f"{h}.{k}.{part}.{a}", f"{h}.{k}.{part}.c_proj"]
        for k in range(3)
        for part, a in (("attn", "c_attn"), ("mlp", "c_fc"))
    ]
    assert all(graph.role(f"{h}.{k}.{p}.c_proj").writes_stream for k in range(3) for p in ("attn", "mlp"))
    assert graph.summary() == "residual: 6 branches (L=6), m=2, pre-norm" and graph.head == "lm_head"
    assert graph.activation_after(f"{h}.0.mlp.c_fc").name == "gelu"  # GPT-2's own gelu_new module


def test_residual_schemes_reach_gpt2s_projections():
    model = _tiny_gpt2()
    proj = [m for n, m in model.named_modules() if n.endswith("c_proj")]
    init_model(model, "zero_residual", sample_input=IDS, seed=0)
    assert all(torch.count_nonzero(m.weight) == 0 for m in proj)
    report = init_model(model, "fixup", sample_input=IDS, seed=0)
    assert all(torch.count_nonzero(m.weight) == 0 for m in proj)
    c_fc = model.transformer.h[1].mlp.c_fc.weight  # inner: He (GELU's gain), fan_in 32, × L^(−1/(2m−2)) = 1/√6
    assert report["transformer.h.1.mlp.c_fc.weight"].fan_in == 32
    assert _std(c_fc) == pytest.approx(_he(32, gain(Activation("gelu"))) / math.sqrt(6), rel=0.05)
    base = _tiny_gpt2()
    init_model(base, "kaiming_normal", sample_input=IDS, seed=0)
    init_model(model, "depth_scaled", sample_input=IDS, seed=0, base="kaiming_normal")
    for k in range(3):
        for part in ("attn", "mlp"):
            scaled, plain = getattr(model.transformer.h[k], part).c_proj, getattr(base.transformer.h[k], part).c_proj
            torch.testing.assert_close(scaled.weight, plain.weight / math.sqrt(12), rtol=0, atol=1e-7)  # 1/√(2L)


def test_stream_std_grows_under_he_and_stays_flat_under_auto():
    model = ResMLP()
    init_model(model, "kaiming_normal", sample_input=X, seed=0)
    he = [s for _, _, s in stream_stds(model, X)]
    init_model(model, "auto", sample_input=X, seed=0)
    auto = [s for _, _, s in stream_stds(model, X)]
    assert len(he) == len(auto) == L
    # He init: each branch preserves its input's variance, so the stream's variance doubles per block.
    assert he[-1] / he[0] == pytest.approx(math.sqrt(2) ** (L - 1), rel=0.2)
    assert auto[-1] / auto[0] < 1.1


# ---- the schemes' formulas -----------------------------------------------------------------------------


def _he(fan_in: int, act_gain: float) -> float:
    return act_gain / math.sqrt(fan_in)


def test_fixup_formula():
    model = ResMLP()
    report = init_model(model, "fixup", sample_input=X, seed=0)
    factor = L ** (-1 / (2 * M - 2))
    for k in range(L):
        inner, last = model.blocks[k][0].weight, model.blocks[k][2].weight
        assert _std(inner) == pytest.approx(_he(WIDTH, math.sqrt(2)) * factor, rel=0.02)
        assert torch.count_nonzero(last) == 0 and torch.count_nonzero(model.blocks[k][2].bias) == 0
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    assert _std(model.stem.weight) == pytest.approx(_he(16, 1.0), rel=0.05)  # outside every branch: He
    assert report["blocks.0.0.weight"].scheme == "fixup→kaiming_normal×L^(−1/(2m−2))"
    assert "×L^(−1/(2m−2)) = 0.354 (L=8, m=2)" in report["blocks.0.0.weight"].note
    assert report["blocks.0.2.weight"].scheme == "fixup→zeros"
    assert report["blocks.0.0.weight"].residual == "residual: inside branch 1/8 (m=2, no norm)"
    assert report["head.weight"].residual == "classifier head"


def test_depth_scaled_is_its_base_with_branch_outputs_over_sqrt_2L():
    base, scaled = ResMLP(), ResMLP()
    init_model(base, "kaiming_normal", sample_input=X, seed=0)
    report = init_model(scaled, "depth_scaled", sample_input=X, seed=0, base="kaiming_normal")
    for (name, p), q in zip(scaled.named_parameters(), base.parameters(), strict=True):
        factor = 1 / math.sqrt(2 * L) if name.endswith(".2.weight") else 1.0
        assert torch.equal(p, q * factor) if factor == 1.0 else torch.allclose(p, q * factor, rtol=0, atol=1e-7)
    assert _std(scaled.blocks[5][2].weight) == pytest.approx(_he(WIDTH, 1.0) / math.sqrt(2 * L), rel=0.02)
    assert report["blocks.5.2.weight"].scheme == "depth_scaled→kaiming_normal×1/√(2L)"


def test_depth_scaled_over_auto_applies_one_residual_rule():
    model = ResMLP()
    init_model(model, "depth_scaled", sample_input=X, seed=0)
    # auto's per-activation choice (He for the layer before the ReLU), not auto's residual scaling too
    assert _std(model.blocks[0][0].weight) == pytest.approx(_he(WIDTH, math.sqrt(2)), rel=0.02)
    assert _std(model.blocks[0][2].weight) == pytest.approx(_he(WIDTH, 1.0) / math.sqrt(2 * L), rel=0.02)


def test_auto_in_a_residual_net_without_normalization():
    model = ResMLP()
    report = init_model(model, "auto", sample_input=X, seed=0)
    for k in range(L):
        assert _std(model.blocks[k][0].weight) == pytest.approx(_he(WIDTH, math.sqrt(2)) * L**-0.5, rel=0.02)
        # the last layer: orthogonal (linear after it), × 1/√(2L)
        w = model.blocks[k][2].weight.detach() * math.sqrt(2 * L)
        assert torch.allclose(w @ w.T, torch.eye(WIDTH), atol=1e-4)
    assert report["blocks.0.2.weight"].scheme == "auto→orthogonal×1/√(2L)"
    assert report["stem.weight"].scheme == "auto→orthogonal" and report["head.weight"].scheme == "auto→orthogonal"


def test_auto_with_normalization_is_unchanged():
    model = TinyResNet()
    report = init_model(model, "auto", sample_input=IMAGES, seed=0)
    assert report["layer1.0.conv2.weight"].scheme == "auto→kaiming_normal"  # the ReLU after the sum
    assert _std(model.layer2[1].conv2.weight) == pytest.approx(_he(16 * 9, math.sqrt(2)), rel=0.1)
    assert report["layer1.0.bn2.weight"].scheme == "ones"


def test_zero_residual_zeroes_the_last_bn_gamma_or_the_last_layer():
    model = TinyResNet()
    report = init_model(model, "zero_residual", sample_input=IMAGES, seed=0)
    for block in (*model.layer1, *model.layer2):
        assert torch.count_nonzero(block.bn2.weight) == 0 and bool((block.bn1.weight == 1).all())
        assert torch.count_nonzero(block.conv2.weight) > 0
    assert report["layer1.0.bn2.weight"].scheme == "zeros"
    assert "γ of branch 1's last norm: 0" in report["layer1.0.bn2.weight"].note
    model.eval()
    x = torch.relu(model.bn1(model.conv1(IMAGES)))
    assert torch.equal(model.layer1[0](x), torch.relu(x))  # every block the identity (then ReLU) at init

    mlp = ResMLP()
    init_model(mlp, "zero_residual", sample_input=X, seed=0)
    assert all(torch.count_nonzero(b[2].weight) == 0 for b in mlp.blocks)
    assert _std(mlp.blocks[0][0].weight) == pytest.approx(_he(WIDTH, math.sqrt(2)), rel=0.02)


def test_residual_weights_same_for_plus_and_inplace_plus():
    a, b = ResMLP(width=32, inplace=False), ResMLP(width=32, inplace=True)
    for scheme in ("fixup", "zero_residual", "depth_scaled", "auto"):
        init_model(a, scheme, sample_input=X, seed=3)
        init_model(b, scheme, sample_input=X, seed=3)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ---- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["fixup", "zero_residual", "depth_scaled"])
def test_residual_scheme_on_a_plain_model_is_one_line(scheme):
    plain = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(AutoInitError) as err:
        init_model(plain, scheme, sample_input=X)
    assert str(err.value).startswith(f"{scheme} needs residual connections") and "\n" not in str(err.value)
    with pytest.raises(AutoInitError) as err:
        init_model(ResMLP(), scheme)
    assert f"scheme '{scheme}' finds the residual branches by tracing" in str(err.value)
    assert "pass sample_input" in str(err.value) and "\n" not in str(err.value)
    assert get_scheme(scheme).data is DataUse.TRACE and get_scheme(scheme).needs_data


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        (ResMLP(), {"head": "zero"}, "head='zero' needs the classifier head"),
        (ResMLP(), {"head": "prior", "sample_input": X, "bias_std": 0.1, "scheme": "default"}, "unknown option"),
        (ResMLP(), {"head": "uniform", "sample_input": X}, "need head to be one of 'zero', 'prior'"),
        (TinyResNet(), {"head": "zero", "sample_input": IMAGES, "include": "layer1.*"}, None),
        (
            nn.Sequential(nn.Embedding(10, 4)),
            {"head": "zero", "sample_input": torch.arange(6).view(2, 3)},
            "comes out of Embedding '0', not a Linear/Conv",
        ),
        (ResMLP(), {"scheme": "depth_scaled", "sample_input": X, "base": "lsuv"}, "need base to be a per-block"),
    ],
)
def test_head_and_base_options_bad_input(model, kwargs, message):
    if message is None:
        init_model(model, **kwargs)  # a head outside `include` is simply left alone
        return
    with pytest.raises(AutoInitError) as err:
        init_model(model, **kwargs)
    assert "\n" not in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("scheme", ["kaiming_normal", "auto", "lsuv", "fixup"])
def test_head_prior_and_zero(scheme):
    model = ResMLP(width=32)
    report = init_model(model, scheme, sample_input=X, seed=0, head="prior")
    assert torch.count_nonzero(model.head.weight) == 0
    assert torch.allclose(model.head.bias, torch.full((5,), -math.log(5)))
    assert report["head.bias"].scheme == "−log(5)" and report["head.weight"].scheme == "zeros"
    init_model(model, scheme, sample_input=X, seed=0, head="zero")
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    assert torch.count_nonzero(model.stem.weight) > 0


# ---- tied parameters -----------------------------------------------------------------------------------


def test_tied_embedding_initialized_once_by_the_first_user_in_forward_order():
    from autoinit.templates import SmallGPT

    tokens = torch.randint(0, 8, (4, 16), generator=torch.Generator().manual_seed(0))
    model = SmallGPT()
    report = init_model(model, "auto", sample_input=tokens, seed=0, head="zero")
    assert model.head.weight is model.tok.weight  # still tied
    assert [r.name for r in report if r.name.endswith("tok.weight") or r.name.startswith("head")] == ["tok.weight"]
    row = report["tok.weight"]
    assert row.scheme == "normal" and _std(model.tok.weight) == pytest.approx(1.0, rel=0.15)  # the embedding's rule
    assert "tied with head: initialized once, by Embedding 'tok' (first in forward order)" in row.note

    class HeadRegisteredFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(8, 20, bias=False)
            self.emb = nn.Embedding(20, 8)
            self.out.weight = self.emb.weight

        def forward(self, t):
            return self.out(torch.tanh(self.emb(t)))

    model = HeadRegisteredFirst()
    report = init_model(model, "xavier_uniform", sample_input=torch.randint(0, 20, (3, 4)), seed=0)
    assert "by Embedding 'emb' (first in forward order)" in report["out.weight"].note
    assert report["out.weight"].fan_in == 1  # the embedding's fans: the owner's rule
    report = init_model(model, "xavier_uniform", seed=0)  # no trace: module order
    assert "by Linear 'out' (first in module order (no sample_input))" in report["out.weight"].note


# ---- documentation, registry, report, templates -------------------------------------------------------


@pytest.mark.parametrize("name", ["fixup", "zero_residual", "depth_scaled"])
def test_residual_schemes_document_formula_paper_example(name):
    scheme = get_scheme(name)
    hook = scheme.model_pass or scheme.pick
    assert scheme.formula and scheme.paper and scheme.example in hook.__doc__
    assert f"| `{name}` |" in markdown_table() and "required (traced)" in markdown_table()


def test_report_shows_the_structure():
    report = init_model(TinyResNet(), "auto", sample_input=IMAGES, seed=0)
    assert report.structure == "residual: 4 branches (L=4), m=2, pre-norm; classifier head: fc"
    assert report.summary().endswith(report.structure)
    assert report["layer2.0.downsample.0.weight"].residual == "residual: shortcut of branch 3/4 (m=2, norm in branch)"
    assert "last norm of branch 1/4" in str(report)
    assert report.to_dict()["structure"] == report.structure
    plain = init_model(nn.Sequential(nn.Linear(16, 4)), sample_input=X)
    assert plain.structure == "classifier head: 0" and plain["0.weight"].residual == "classifier head"


@pytest.mark.parametrize(
    ("model", "data"),
    [
        ("ResNetCNN(channels=8, blocks=1)", "DigitsData()"),
        ("ResidualMLP(blocks=4, width=16)", "DigitsData(flat=True)"),
        ("SmallGPT(depth=1)", "MarkovData(n=128)"),
    ],
)
def test_residual_templates_train_with_autoinit(tmp_path, model, data):
    import lightning.pytorch as pl

    from autoinit import AutoInit
    from autoinit.templates import DigitsData, MarkovData, ResidualMLP, ResNetCNN, SmallGPT  # noqa: F401

    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[AutoInit("fixup", seed=0, verbose=False), Record()],
    ).fit(eval(model), datamodule=eval(data))
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)


def test_markov_data_is_order_two():
    from autoinit.templates import MarkovData

    data = MarkovData(n=64, vocab=5, seq_len=12)
    data.setup()
    x, y = data.dataset.tensors
    assert x.shape == y.shape == (64, 12) and torch.equal(x[:, 1:], y[:, :-1])


class _SandwichBlocks(nn.Module):
    """x + post_norm(down(silu(up(pre_norm(x))))), the norms hand-written; or BatchNorm-free with torch's
    LayerNorm as the post-norm (``torch_norm``)."""

    def __init__(self, d=16, blocks=2, torch_norm=False):
        super().__init__()
        post = (lambda: nn.LayerNorm(d)) if torch_norm else (lambda: HandRMSNorm(d))
        self.pre = nn.ModuleList([HandRMSNorm(d) for _ in range(blocks)])
        self.up = nn.ModuleList([nn.Linear(d, 2 * d) for _ in range(blocks)])
        self.down = nn.ModuleList([nn.Linear(2 * d, d) for _ in range(blocks)])
        self.post = nn.ModuleList([post() for _ in range(blocks)])

    def forward(self, x):
        for pre, up, down, post in zip(self.pre, self.up, self.down, self.post, strict=True):
            x = x + post(down(torch.nn.functional.silu(up(pre(x)))))
        return x


def test_zero_residual_zeroes_a_branch_ending_in_a_hand_written_norm_by_its_last_layer():
    # Only the module knows which γ of a hand-written norm is the identity (x·γ or x·(1+γ)), so its γ stays
    # as built and the branch starts at zero by its last layer: every block is the identity at init.
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    model = _SandwichBlocks()
    report = init_model(model, "zero_residual", sample_input=x, seed=0)
    for i in range(2):
        assert torch.count_nonzero(model.down[i].weight) == 0, report.compact()
        assert torch.equal(model.post[i].weight, torch.ones(16))
    with torch.no_grad():
        assert torch.allclose(model(x), x, atol=1e-5)
    # a torch norm after the last layer: its γ is zeroed instead, the last layer keeps its draw
    model = _SandwichBlocks(torch_norm=True)
    init_model(model, "zero_residual", sample_input=x, seed=0)
    assert all(torch.count_nonzero(model.post[i].weight) == 0 for i in range(2))
    assert all(torch.count_nonzero(model.down[i].weight) > 0 for i in range(2))
