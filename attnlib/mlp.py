"""The MLP (feed-forward) block: applied to every position on its own, no mixing across tokens."""

from __future__ import annotations

import torch
from torch import nn

from . import _validate as V

__all__ = ["MLP"]


class MLP(nn.Module):
    """x -> down(GELU(up(x))): d_model -> d_mlp -> d_model (GPT uses d_mlp = 4 * d_model)."""

    def __init__(self, d_model: int, d_mlp: int | None = None, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        d_model = V.positive_int("MLP", "d_model", d_model)
        d_mlp = V.optional_positive_int("MLP", "d_mlp", d_mlp)
        dropout = V.probability("MLP", "dropout", dropout)
        bias = V.flags("MLP", bias=bias)["bias"]
        d_mlp = 4 * d_model if d_mlp is None else d_mlp
        self.up = nn.Linear(d_model, d_mlp, bias=bias)
        self.act = nn.GELU()
        self.down = nn.Linear(d_mlp, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None  # none that drops nothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d_model) -> (..., d_model)
        V.stream("MLP", "x", x, self.up.in_features, self.up.weight, ndim=None)
        y = self.down(self.act(self.up(x)))
        return y if self.dropout is None else self.dropout(y)
