"""Layers that some schemes need."""

from __future__ import annotations

import torch
from torch import nn


class CReLU(nn.Module):
    """Concatenated ReLU: ``cat(relu(x), relu(-x))`` along ``dim`` (Shang et al. 2016).

    It doubles the feature dimension. A layer fed by a CReLU and initialized ``looks_linear`` as
    W = [U, −U] computes U·relu(x) − U·relu(−x) = U·x, so the network is linear at init
    (Balduzzi et al. 2017).
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((torch.relu(x), torch.relu(-x)), dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
