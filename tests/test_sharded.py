"""Sharded initialization (autoinit.sharded, AutoInit under ModelParallelStrategy): in-process tests on a
1-rank gloo mesh, and 2-process CPU fits (gloo) for FSDP2, tensor parallel and meta-device models."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

from autoinit import AutoInit, init_model
from autoinit.activations import Activation, gain
from autoinit.errors import AutoInitError
from autoinit.schemes.registry import get_scheme
from autoinit.sharded import ShardedWriter, check_scheme, meta_skeleton

SCRIPTS = Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from sharded_models import PER_BLOCK, TP_SCHEMES, ShardedNet, TensorParallelNet, WideMLP  # noqa: E402


@pytest.fixture
def mesh():
    """A 1-rank gloo process group and mesh for DTensor parameters, torn down after the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,), mesh_dim_names=("data_parallel",))
    finally:
        torch.distributed.destroy_process_group()


def _gathered(model):
    return {n: (p.full_tensor() if isinstance(p, DTensor) else p).detach() for n, p in model.named_parameters()}


def _layer_variances(cls, params):
    """Each Linear/Conv output's variance on the model's example input, in an unsharded copy holding
    ``params``: what LSUV sets to g² = 1."""
    model = cls(shard=False)
    model.configure_model()
    model.load_state_dict(params, strict=False)
    variances = {}

    def record(name):
        def hook(module, args, out):
            variances.setdefault(name, float(out.var()))

        return hook

    hooks = [
        m.register_forward_hook(record(n)) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    with torch.no_grad():
        model.eval()(model.example_input_array)
    for h in hooks:
        h.remove()
    return variances


def _reference(cls, scheme, **options):
    """Single-process init_model on an unsharded copy; one thread, as the sharded writer draws on CPU (CPU
    QR rounds differently with the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = cls(shard=False)
        model.configure_model()
        init_model(model, scheme, seed=123, sample_input=model.example_input_array, **options)
    finally:
        torch.set_num_threads(threads)
    return {n: p.detach() for n, p in model.named_parameters()}


@pytest.mark.parametrize("scheme", ["auto", "orthogonal", "default"])
def test_one_rank_mesh_is_bit_equal_to_init_model(mesh, scheme):
    model = ShardedNet()
    model._device_mesh = mesh
    model.configure_model()
    assert isinstance(model.net["fc"].weight, DTensor)
    report = init_model(
        model, scheme, seed=123, sample_input=model.example_input_array, writer=ShardedWriter(model, seed=123)
    )
    ref = _reference(ShardedNet, scheme)
    for name, value in _gathered(model).items():
        assert torch.equal(value, ref[name]), name
    assert report.activation_source != "module order"  # traced on the meta skeleton
    assert report["net.fc.weight"].std == pytest.approx(float(ref["net.fc.weight"].std()), rel=0.01)


class RootSharded(nn.Module):
    """Linear layers sharded only as one FSDP2 root group: during a forward the root's gathered weights stay
    in the modules after it (no reshard after forward at the root)."""

    def __init__(self):
        super().__init__()
        self.example_input_array = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
        self.net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))

    def forward(self, x):
        return self.net(x)


def test_lsuv_on_a_one_rank_mesh_reaches_unit_variance_and_matches_init_model(mesh):
    model = ShardedNet()
    model._device_mesh = mesh
    model.configure_model()
    report = init_model(
        model, "lsuv", seed=123, sample_input=model.example_input_array, writer=ShardedWriter(model, seed=123)
    )
    assert "lsuv" in report["net.fc.weight"].scheme
    got, ref = _gathered(model), _reference(ShardedNet, "lsuv")
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    variances = _layer_variances(ShardedNet, got)
    for layer in ("net.conv1", "net.conv2", "net.fc", "net.head"):
        assert variances[layer] == pytest.approx(1.0, abs=0.1), (layer, variances)


def test_lsuv_rescales_the_gathered_weights_of_a_root_only_fsdp2_model(mesh):
    model = RootSharded()
    fully_shard(model, mesh=mesh)
    init_model(model, "lsuv", seed=0, sample_input=model.example_input_array, writer=ShardedWriter(model, seed=0))
    # Back to shards after the pass: the parameters are the DTensors the optimizer holds.
    assert all(isinstance(p, DTensor) for p in model.parameters())
    plain = RootSharded()
    plain.load_state_dict(_gathered(model))
    with torch.no_grad():
        first = plain.net[0](plain.example_input_array)
        second = plain.net[2](torch.tanh(first))
    assert float(first.var()) == pytest.approx(1.0, abs=0.1)
    assert float(second.var()) == pytest.approx(1.0, abs=0.1)


def test_meta_skeleton_has_no_data_and_no_hooks(mesh):
    model = ShardedNet()
    model._device_mesh = mesh
    model.configure_model()
    skeleton = meta_skeleton(model)
    assert all(p.is_meta and not isinstance(p, DTensor) for p in skeleton.parameters())
    assert [n for n, _ in skeleton.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert type(skeleton.net["fc"]) is nn.Linear and not skeleton.net["fc"]._forward_pre_hooks
    assert skeleton(torch.empty(2, 3, 8, 8, device="meta")).shape == (2, 7)
    assert isinstance(model.net["fc"].weight, DTensor)  # the model itself is untouched


def test_local_draw_keeps_the_formula_std_and_refuses_orthogonal(mesh):
    model = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 512))
    fully_shard(model[0], mesh=mesh)
    fully_shard(model, mesh=mesh)
    init_model(model, "kaiming_normal", seed=1, writer=ShardedWriter(model, draw="local", seed=1))
    w = model[0].weight.to_local().detach()
    assert float(w.std()) == pytest.approx(gain(Activation("relu")) / math.sqrt(512), rel=0.02)
    full = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 512))
    init_model(full, "kaiming_normal", seed=1)
    assert not torch.equal(w, full[0].weight)  # drawn from its shard's own generator
    with pytest.raises(AutoInitError, match=r"sharded_draw='local'.*'orthogonal'.*sharded_draw='full'"):
        init_model(model, "orthogonal", seed=1, writer=ShardedWriter(model, draw="local", seed=1))
    with pytest.raises(AutoInitError, match=r"sharded_draw must be 'full'.*or 'local'"):
        ShardedWriter(model, draw="lean", seed=1)


def test_sharded_weight_of_the_wrong_global_shape_is_one_line(mesh):
    model = nn.Sequential(nn.Linear(8, 6))
    # A layer split by hand: a local-shape weight declared as the global one.
    model[0].weight = nn.Parameter(distribute_tensor(torch.zeros(3, 8), mesh, [Shard(0)]))
    with pytest.raises(AutoInitError, match=r"'0.weight' has global shape \(3, 8\) but its Linear declares \(6, 8\)"):
        init_model(model, "kaiming_normal", seed=0, writer=ShardedWriter(model, seed=0))


def test_schemes_that_cannot_run_sharded_and_refused_strategies():
    refused = r"scheme 'yam_chow' measures .* redraws whole weights.*ModelParallelStrategy: use it under DDP"
    with pytest.raises(AutoInitError, match=refused):
        check_scheme(get_scheme("yam_chow"), "ModelParallelStrategy")
    for name in [*PER_BLOCK, "lsuv"]:
        check_scheme(get_scheme(name), "ModelParallelStrategy")
    for strategy, why in ((object.__new__(DeepSpeedStrategy), "DeepSpeed ZeRO"), (FSDPStrategy(), "FSDP \\(v1\\)")):
        trainer = SimpleNamespace(strategy=strategy)
        with pytest.raises(AutoInitError, match=f"does not run under .*Strategy \\({why}.*use ModelParallelStrategy"):
            AutoInit().setup(trainer, None, "fit")
    with pytest.raises(AutoInitError, match="sharded_draw"):
        AutoInit(sharded_draw="half")


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """One 2-process launch for every case below (tests/scripts/sharded_fits.py): starting the ranks costs
    more than the fits. Returns a loader of ``<case>-rank<N>.pt``."""
    out = tmp_path_factory.mktemp("sharded_fits")
    # Its own session: should a rank hang in a collective, both ranks (rank 1 is rank 0's child) are killed.
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "sharded_fits.py"), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"the 2-process fits did not end within 540 s: {stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    assert "terminate called" not in stderr, stderr[-3000:]
    return SimpleNamespace(out=out, load=lambda case, rank: torch.load(out / f"{case}-rank{rank}.pt"))


@pytest.mark.multiprocess
def test_fsdp2_two_ranks_bit_equal_to_single_process_for_every_per_block_scheme(fits):
    for scheme in PER_BLOCK:
        rank0, rank1 = fits.load(f"fsdp-{scheme}", 0), fits.load(f"fsdp-{scheme}", 1)
        ref = _reference(ShardedNet, scheme)
        assert rank0.keys() == ref.keys()
        for name in ref:
            assert torch.equal(rank0[name], ref[name]), (scheme, name)
            assert torch.equal(rank1[name], ref[name]), (scheme, name)


@pytest.mark.multiprocess
def test_tensor_parallel_colwise_rowwise_and_replicated_bit_equal(fits):
    for scheme in TP_SCHEMES:
        ref = _reference(TensorParallelNet, scheme)
        for rank in (0, 1):
            got = fits.load(f"tp-{scheme}", rank)
            assert got.keys() == ref.keys()
            for name in ref:  # out.* are Replicate: each rank's own copy
                assert torch.equal(got[name], ref[name]), (scheme, rank, name)


@pytest.mark.multiprocess
@pytest.mark.parametrize("case, cls", [("fsdp", ShardedNet), ("tp", TensorParallelNet)])
def test_lsuv_two_ranks_reaches_unit_variance_globally(fits, case, cls):
    ref = _reference(cls, "lsuv")  # the same sample batch in one process
    for rank in (0, 1):
        got = fits.load(f"{case}-lsuv", rank)
        variances = _layer_variances(cls, got)
        reached = ("net.conv1", "net.conv2", "net.fc", "net.head") if cls is ShardedNet else ("up", "down", "out")
        for layer in reached:  # Var(out) of the whole layer, so every shard was scaled alike
            assert variances[layer] == pytest.approx(1.0, abs=0.1), (rank, layer, variances)
        for name in ref:
            torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-6, msg=f"{rank} {name}")


@pytest.mark.multiprocess
def test_local_draw_two_ranks_statistics_and_distinct_shards(fits):
    rank0, rank1 = fits.load("local-kaiming_normal", 0), fits.load("local-kaiming_normal", 1)
    w = rank0["net.fc.weight"]
    assert all(torch.equal(rank0[n], rank1[n]) for n in rank0)
    assert not torch.equal(w[:32], w[32:])  # each shard its own draw
    assert float(w.std()) == pytest.approx(gain(Activation("gelu")) / math.sqrt(512), rel=0.02)


@pytest.mark.multiprocess
def test_meta_device_model_initialized_within_one_parameter_of_memory(fits):
    full_mib = sum(p.numel() for p in WideMLP(shard=False).parameters()) * 4 / 2**20  # 96 MiB
    for rank in (0, 1):
        info = json.loads((fits.out / f"meta-rank{rank}.json").read_text())
        # One full 2048×2048 weight (16 MiB) and its shard: far below a second copy of the model.
        assert info["peak_growth_mib"] < full_mib / 2, info
    got = fits.load("meta", 0)
    model = WideMLP(shard=False)
    init_model(model, "kaiming_normal", seed=5, sample_input=model.example_input_array)
    for name, p in model.named_parameters():
        assert torch.equal(got[name], p.detach()), name


@pytest.mark.multiprocess
def test_resumed_sharded_fit_keeps_the_restored_shards_bit_for_bit(fits):
    saved, resumed = fits.load("resume-saved", 0), fits.load("resume-resumed", 0)
    assert saved.keys() == resumed.keys()
    for name in saved:
        assert torch.equal(saved[name], resumed[name]), name
