"""Output heads on top of the trunk's hidden states.

Both heads apply a final LayerNorm modulated by the time conditioning (adaLN, zero-initialised):
``h' = LN(h) * (1 + scale(c)) + shift(c)``.

- :class:`TokenHead`: ``logits = W h'`` over the full vocabulary (zero-initialised, so the initial
  token distribution is uniform).
- :class:`RateHead`: one positive scalar per position,
  ``rate = min_rate + (max_rate - min_rate) * softplus(w2 . GELU(W1 h'))`` (``positive="softplus"``)
  or ``rate = min_rate + exp(.)`` (``positive="exp"``). Computed in float32; the last bias starts at
  ``init_bias`` so the initial rates are small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Modulated(nn.Module):
    def __init__(self, d_model: int, d_cond: int | None):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, bias=False)
        self.modulation = None
        if d_cond is not None:
            self.modulation = nn.Linear(d_cond, 2 * d_model)
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def modulate(self, h: Tensor, cond: Tensor | None) -> Tensor:
        h = self.norm(h)
        if self.modulation is None or cond is None:
            return h
        shift, scale = self.modulation(cond)[:, None].chunk(2, dim=-1)
        return h * (1 + scale) + shift


class TokenHead(_Modulated):
    """(B, L, d) -> logits (B, L, V)."""

    def __init__(self, d_model: int, vocab_size: int, d_cond: int | None = None):
        super().__init__(d_model, d_cond)
        self.out = nn.Linear(d_model, vocab_size, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, h: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.out(self.modulate(h, cond))


class RateHead(_Modulated):
    """(B, L, d) -> positive rates (B, L), float32."""

    def __init__(
        self,
        d_model: int,
        d_cond: int | None = None,
        min_rate: float = 0.0,
        max_rate: float = 100.0,
        positive: str = "softplus",
        init_bias: float = -4.0,
    ):
        super().__init__(d_model, d_cond)
        if positive not in ("softplus", "exp"):
            raise ValueError(f"positive map must be 'softplus' or 'exp', not {positive!r}")
        self.min_rate, self.max_rate, self.positive = min_rate, max_rate, positive
        self.hidden = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, 1)
        nn.init.constant_(self.out.bias, init_bias)

    def forward(self, h: Tensor, cond: Tensor | None = None) -> Tensor:
        s = self.out(F.gelu(self.hidden(self.modulate(h, cond)))).squeeze(-1).float()
        if self.positive == "exp":
            return self.min_rate + torch.exp(s)
        return self.min_rate + (self.max_rate - self.min_rate) * F.softplus(s)
