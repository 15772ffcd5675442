import math

import pytest
import torch
from torch import nn

from autoinit import AutoInitError, init_model
from autoinit.nn import CReLU
from autoinit.schemes import delta_orthogonal, looks_linear


def test_orthogonal_rows_are_orthonormal_times_g_a():
    model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 10))
    init_model(model, "orthogonal", gain=1.3, seed=0)
    w = model[0].weight.detach().double()
    scale = 1.3 * math.sqrt(2)
    torch.testing.assert_close(w @ w.T, scale**2 * torch.eye(200, dtype=torch.double), atol=1e-5, rtol=0)


def test_orthogonal_tall_matrix_has_orthonormal_columns():
    model = nn.Linear(50, 120)
    init_model(model, "orthogonal", seed=0)
    w = model.weight.detach().double()
    torch.testing.assert_close(w.T @ w, torch.eye(50, dtype=torch.double), atol=1e-5, rtol=0)


def test_delta_orthogonal_centre_tap_only():
    conv = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.Tanh())
    init_model(conv, "delta_orthogonal", gain=0.9, seed=0)
    w = conv[0].weight.detach().double()
    centre = w[:, :, 1, 1]
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[:, :, 1, 1] = False
    assert torch.count_nonzero(w[mask]) == 0
    scale = 0.9 * 5 / 3
    torch.testing.assert_close(centre.T @ centre, scale**2 * torch.eye(16, dtype=torch.double), atol=1e-5, rtol=0)


def test_delta_orthogonal_conv_is_isometry_at_init():
    conv = nn.Conv1d(8, 8, 5, padding=2, bias=False)
    delta_orthogonal(conv.weight.data, 1.0, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 8, 30)
    torch.testing.assert_close(conv(x).detach().norm(dim=1), x.norm(dim=1), atol=1e-4, rtol=1e-4)


def test_delta_orthogonal_grouped_and_transposed():
    w = torch.empty(8, 4, 3)  # Conv1d(8, 8, groups=2): per group (4 out × 4 in)
    delta_orthogonal(w, 1.0, groups=2)
    for g in range(2):
        tap = w[g * 4 : (g + 1) * 4, :, 1].double()
        torch.testing.assert_close(tap.T @ tap, torch.eye(4, dtype=torch.double), atol=1e-5, rtol=0)
    wt = torch.empty(6, 10, 3)  # ConvTranspose1d(6 -> 10): tap is (in, out), rows orthonormal
    delta_orthogonal(wt, 1.0, transposed=True)
    tap = wt[:, :, 1].double()
    torch.testing.assert_close(tap @ tap.T, torch.eye(6, dtype=torch.double), atol=1e-5, rtol=0)


def test_delta_orthogonal_rejects_fewer_outputs_than_inputs():
    conv = nn.Sequential(nn.Conv2d(32, 16, 3), nn.ReLU())
    with pytest.raises(AutoInitError, match=r"layer '0.weight' has 16 < 32.*orthogonal"):
        init_model(conv, "delta_orthogonal")


def test_looks_linear_network_is_linear_at_init():
    model = nn.Sequential(nn.Linear(12, 24), CReLU(), nn.Linear(48, 24), CReLU(), nn.Linear(48, 5))
    init_model(model, "looks_linear", seed=0)
    w2 = model[2].weight.detach()
    torch.testing.assert_close(w2[:, 24:], -w2[:, :24])
    u = w2[:, :24].double()
    torch.testing.assert_close(u @ u.T, torch.eye(24, dtype=torch.double), atol=1e-5, rtol=0)
    x = torch.randn(7, 12)
    linear = x @ model[0].weight.T @ model[2].weight[:, :24].T @ model[4].weight[:, :24].T
    torch.testing.assert_close(model(x).detach(), linear.detach(), atol=1e-5, rtol=1e-5)


def test_looks_linear_without_crelu_is_one_line_error():
    with pytest.raises(AutoInitError, match="CReLU"):
        init_model(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), "looks_linear")


def test_looks_linear_helper_rejects_odd_width():
    with pytest.raises(AutoInitError, match="odd input size"):
        looks_linear(torch.empty(4, 5), 1.0, label="fc")
