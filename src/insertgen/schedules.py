"""Insertion and unmasking schedules.

A schedule is the CDF ``F(t)`` of a token's event time on ``[0, 1]`` (``F(0) = 0``, ``F(1) = 1``).
The matching continuous-time Markov chain jumps with hazard ``h(t) = F'(t) / (1 - F(t))``.

FlexMDM (spec loflexmdm.md §2.1) uses the linear schedule for both events:

    F(t) = t,   h(t) = 1 / (1 - t),   F^{-1}(u) = u

Event times of one token (§1.2): insertion ``T_in ~ F`` (mapped to ``eps + (1 - eps) U`` so it is never
exactly 0), then unmasking ``T_um ~ F`` truncated to ``[T_in, 1]``:

    T_um = F^{-1}(U_2 (1 - F(T_in)) + F(T_in))
"""

from __future__ import annotations

import torch
from torch import Tensor


class LinearSchedule:
    """``F(t) = t``: the uniform event-time distribution of FlexMDM (Kim et al. 2025)."""

    name = "linear"

    def __init__(self, eps: float = 1e-6):
        self.eps = eps

    def cdf(self, t: Tensor) -> Tensor:
        return t.clamp(0.0, 1.0)

    def pdf(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def hazard(self, t: Tensor) -> Tensor:
        """h(t) = 1 / (1 - t), in float32."""
        return 1.0 / (1.0 - t.float())

    def inverse_cdf(self, u: Tensor) -> Tensor:
        return u

    def integrated_hazard(self, t0: Tensor, t1: Tensor) -> Tensor:
        """∫_{t0}^{t1} h(s) ds = log((1 - t0) / (1 - t1))."""
        return torch.log1p(-t0.float()) - torch.log1p(-t1.float())

    def sample_event_times(self, shape, generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
        """(T_in, T_um) of the given shape: T_in = eps + (1 - eps) U_1, T_um | T_in ~ F truncated to [T_in, 1]."""
        u1 = torch.rand(shape, generator=generator, device=device)
        u2 = torch.rand(shape, generator=generator, device=device)
        t_in = self.inverse_cdf(self.eps + (1.0 - self.eps) * u1)
        f_in = self.cdf(t_in)
        t_um = self.inverse_cdf(u2 * (1.0 - f_in) + f_in)
        return t_in, t_um
