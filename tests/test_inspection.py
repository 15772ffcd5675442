import pytest
import torch
import yaml

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
