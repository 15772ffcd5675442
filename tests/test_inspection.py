import pytest
import torch
import yaml

from autoinit import init_model
from autoinit.cli import main
from autoinit.inspection import measure
from autoinit.templates import DeepMLP


def _batch(n=64, features=32, classes=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_xavier_vanishes_in_deep_relu_net_kaiming_does_not():
    x, y = _batch()
    xavier = measure(DeepMLP(depth=30, width=64), (x, y), x, "xavier_uniform")
    kaiming = measure(DeepMLP(depth=30, width=64), (x, y), x, "kaiming_normal")
    assert len(xavier.layers) == 30 and [lay.name for lay in xavier.layers][:2] == ["net.0", "net.2"]
    assert xavier.forward_ratio < 1e-3 and xavier.backward_ratio < 1e-3  # (1/√2)^29 ≈ 4e-5
    assert "signal vanishes" in xavier.layers[-2].flag
    assert 0.1 < kaiming.forward_ratio < 10 and not any("vanish" in lay.flag for lay in kaiming.layers)
    assert xavier.hopeless and not kaiming.hopeless


def test_orthogonal_linear_net_is_dynamically_isometric():
    x, y = _batch()
    stats = measure(DeepMLP(depth=20, width=32, classes=32, activation="linear", bias=False), (x, y), x, "orthogonal")
    assert stats.jacobian_sv == pytest.approx([1.0] * 32, abs=1e-4)
    assert stats.isometry_spread == pytest.approx(0.0, abs=1e-4)
    gaussian = measure(
        DeepMLP(depth=20, width=32, classes=32, activation="linear", bias=False), (x, y), x, "lecun_normal"
    )
    assert gaussian.isometry_spread > 0.3  # products of Gaussian matrices spread their singular values


def test_inspect_command_writes_table_and_plot(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "autoinit.templates.DeepMLP", "init_args": {"depth": 20, "width": 16}},
                "data": {"class_path": "autoinit.templates.TeacherData", "init_args": {"n": 256}},
                "tune": {"output": str(tmp_path / "out")},
            }
        )
    )
    assert main(["inspect", str(cfg), "--schemes", "xavier_uniform,kaiming_normal", "--gain", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "vanish" in out and "kaiming_normal" in out and "isometry" in out
    assert (tmp_path / "out" / "inspect.png").stat().st_size > 10_000
    assert main(["inspect", str(cfg), "--schemes", "kaiming_norm"]) == 2


# ---- a new user's first `autoinit inspect` ------------------------------------------------------------------
def _config(tmp_path, model, data=None, name="c.yaml"):
    cfg = {
        "model": model,
        "trainer": {"accelerator": "cpu", "max_steps": 10},
        "tune": {"output": str(tmp_path / "out")},
    }
    if data is not None:
        cfg["data"] = data
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _residual(tmp_path, **model_args):
    return _config(
        tmp_path,
        {"class_path": "userland.ResidualDictNet", "init_args": model_args},
        {"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "mnist"), "n": 64}},
    )


def test_inspect_prepares_data_and_runs_training_step_as_a_fit_would(tmp_path, capsys, recwarn):
    assert main(["inspect", _residual(tmp_path), "--schemes", "default,kaiming_normal,lsuv"]) == 0
    out, err = capsys.readouterr()
    assert "blocks.2.fc2" in out and "lsuv" in out and err == ""
    assert (tmp_path / "mnist" / "prepare_calls").read_text().count("\n") == 1  # once for three schemes
    assert not [w for w in recwarn if "self.log" in str(w.message) or "trainer" in str(w.message)]
    assert (tmp_path / "out" / "inspect.png").stat().st_size > 10_000


def test_measure_runs_inside_a_real_fit_before_any_step(tmp_path):
    import userland

    x, y = userland.make_samples(16)
    model = userland.ResidualDictNet()
    stats = measure(model, {"x": x, "y": y}, None, "kaiming_normal", seed=3)
    reference = userland.ResidualDictNet()
    init_model(reference, "kaiming_normal", sample_input=x, seed=3)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(reference(x), y)
    assert stats.loss == pytest.approx(float(expected), rel=1e-6)
    assert [lay.name for lay in stats.layers] == [
        "stem", "blocks.0.fc1", "blocks.0.fc2", "blocks.1.fc1", "blocks.1.fc2", "blocks.2.fc1", "blocks.2.fc2", "head"
    ]  # fmt: skip
    for k, v in reference.state_dict().items():  # the weights measured are the init's: no optimizer step
        assert torch.equal(model.state_dict()[k], v), k
    assert model.trainer.global_step == 0 and model.seen == [
        userland.hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16]
    ]


def test_model_with_its_own_data_hooks(tmp_path, capsys):
    path = _config(tmp_path, {"class_path": "userland.OwnLoaderNet", "init_args": {"root": str(tmp_path / "own")}})
    assert main(["inspect", path, "--schemes", "xavier_normal"]) == 0
    assert "net.2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "model_args", "n", "message"),
    [
        ([], {"mode": "none"}, 64, "ResidualDictNet.training_step returned None: inspect needs the loss; return it"),
        ([], {"mode": "dict_no_loss"}, 64, "returned a dict without 'loss' (keys: train_loss)"),
        (
            [],
            {"mode": "forward_error"},
            64,
            "one training step of ResidualDictNet under 'kaiming_normal' failed: RuntimeError: mat1 and mat2 shapes "
            "cannot be multiplied (16x8 and 7x32): fix the model",
        ),
        ([], {}, 8, "the train dataloader yields no batch (an empty dataset, or fewer samples than batch_size"),
        (["--gain", "0"], {}, 64, "--gain must be a positive finite number (1.0 = the textbook formula), got 0"),
        (["--gain=-1"], {}, 64, "--gain must be a positive finite number"),
        (["--gain", "nan"], {}, 64, "got nan"),
        (["--batch-to-input", "userland.nope"], {}, 64, "cannot import 'userland.nope'"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys, args, model_args, n, message):
    path = _config(
        tmp_path,
        {"class_path": "userland.ResidualDictNet", "init_args": model_args},
        {"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "d"), "n": n}},
    )
    assert main(["inspect", path, "--schemes", "kaiming_normal", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("autoinit: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "inspect.png").exists()


def test_dict_batch_without_a_forward_key(tmp_path, capsys):
    path = _config(
        tmp_path,
        {"class_path": "userland.ResidualDictNet", "init_args": {"input_key": "features"}},
        {"class_path": "userland.FileData", "init_args": {"root": str(tmp_path / "d"), "input_key": "features"}},
    )
    assert main(["inspect", path, "--schemes", "kaiming_normal,lsuv"]) == 0
    out = capsys.readouterr().out
    assert "kaiming_normal: note: activations from module order: a training batch is a dict with keys" in out
    assert "lsuv: a training batch is a dict with keys (features, y)" in out  # lsuv cannot run; the rest can
    assert main(["inspect", path, "--schemes", "lsuv", "--batch-to-input", "userland.to_input"]) == 0
    assert "lsuv gain=1" in capsys.readouterr().out


def test_manual_optimization_is_measured_at_its_manual_backward():
    import userland

    class Manual(userland.ResidualDictNet):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self(batch["x"]), batch["y"])
            self.manual_backward(loss)
            opt.step()

    x, y = userland.make_samples(16)
    model = Manual()
    stats = measure(model, {"x": x, "y": y}, None, "orthogonal", seed=1)
    reference = Manual()
    init_model(reference, "orthogonal", sample_input=x, seed=1)
    with torch.no_grad():
        assert stats.loss == pytest.approx(float(torch.nn.functional.cross_entropy(reference(x), y)), rel=1e-6)
    assert len(stats.layers) == 8 and all(lay.grad_std and lay.grad_std > 0 for lay in stats.layers)
    assert torch.equal(model.head.weight, reference.head.weight)  # stopped before opt.step()


def test_residual_stream_std_block_after_block():
    from rich.console import Console

    from autoinit.inspection import render
    from autoinit.templates import ResidualMLP

    x, y = _batch(features=64)
    kaiming = measure(ResidualMLP(blocks=8), (x, y), x, "kaiming_normal")
    fixup = measure(ResidualMLP(blocks=8), (x, y), x, "fixup")
    plain = measure(DeepMLP(depth=4, width=16), _batch(), _batch()[0], "kaiming_normal")
    assert len(kaiming.stream) == len(fixup.stream) == 8 and plain.stream == []
    assert kaiming.stream[-1] > 3 * kaiming.stream[0]  # He branches add variance block after block
    assert fixup.stream == pytest.approx([fixup.stream[0]] * 8)  # zero last layers: the stream stays put
    console = Console(record=True, width=200)
    render([fixup], console)
    assert "residual stream std after each of 8 blocks" in console.export_text()


def test_jacobian_of_a_model_whose_output_is_a_mapping():
    """A Hugging Face model returns a ModelOutput (a mapping): its logits are what the Jacobian is of."""
    import torch
    from torch import nn

    from autoinit.inspection import jacobian_singular_values

    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3, bias=False)

        def forward(self, x):
            return {"logits": self.lin(x), "hidden": None}

    model = DictOut()
    with torch.no_grad():
        model.lin.weight.copy_(torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0.5, 0]]))
    svs = sorted(jacobian_singular_values(model, torch.ones(2, 4)), reverse=True)
    assert svs == pytest.approx([3.0, 2.0, 0.5], abs=1e-6)
