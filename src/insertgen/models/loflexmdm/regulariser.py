"""Schedule regulariser of LoFlexMDM (docs/methods/loflexmdm.md#regulariser).

Jointly training the generator and the auxiliary network can lower the loss by pushing every event to
an endpoint of [0, 1] instead of learning an order. Per sequence, over its active (noised) positions I,
with per-token rates ``b_i`` of one schedule (insertion or unmasking):

    R(b) = w_mean * sum_{g=1..G} ( (1/|I|) sum_{i in I} F_{a,b_i}(t_g) - t_g )^2       mixture CDF ~ uniform
         + w_bnd  * sum_{i in I} [ relu(F_{a,b_i}(eps) - delta)^2 + relu(1 - F_{a,b_i}(1 - eps) - delta)^2 ]
         + w_kl   * (1/|I|) sum_{i in I} KL(Kuma(a, b_i) || U[0, 1])

    KL(Kuma(a, b) || U) = log(a b) + ((a - 1)/a) (psi(1) - psi(b + 1)) - (b - 1)/b

on a stratified grid ``t_g = lo + (g - 1 + u_g)(hi - lo)/G`` (G = 100, [lo, hi] = [1e-4, 1 - 1e-4], one
uniform jitter per stratum, redrawn at every call), eps = delta = 0.01. The mixture term is summed over
the grid, the hinges over positions, the KL averaged over positions (as in the reference code). Every
term is 0 for uniform schedules (a = b = 1) and positive otherwise (the KL is a divergence).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from insertgen.models.schedules import KumaraswamySchedule


@dataclass
class RegulariserWeights:
    mean: float = 1.0  # w_mean, mixture CDF against the uniform CDF
    boundary: float = 1.0  # w_bnd, endpoint hinges
    kl: float = 1.0  # w_kl, KL to the uniform distribution
    grid_points: int = 100
    eps: float = 0.01
    delta: float = 0.01


def kumaraswamy_kl_to_uniform(a: float, b: Tensor) -> Tensor:
    """KL(Kuma(a, b) || U[0, 1]) = log(ab) + ((a-1)/a)(psi(1) - psi(b+1)) - (b-1)/b."""
    b = b.float()
    psi1 = torch.digamma(torch.ones_like(b))
    return torch.log(a * b) + ((a - 1.0) / a) * (psi1 - torch.digamma(b + 1.0)) - (b - 1.0) / b


def schedule_regulariser(schedule: KumaraswamySchedule, b: Tensor, active: Tensor, weights: RegulariserWeights,
                         generator: torch.Generator | None = None) -> Tensor:
    """R(b) per sequence (B,) for rates ``b`` (B, L) on the ``active`` positions (B, L) bool."""
    m = active.float()
    count = m.sum(-1)
    G = weights.grid_points
    lo, hi = 1e-4, 1.0 - 1e-4
    jitter = torch.rand(G, generator=generator, device=b.device)
    grid = lo + (torch.arange(G, device=b.device) + jitter) * ((hi - lo) / G)  # (G,)
    cdf = schedule.cdf(grid[None, None, :], b.float()[..., None])  # (B, L, G)
    mixture = (cdf * m[..., None]).sum(1) / (count[:, None] + 1e-9)  # (B, G)
    mean_term = ((mixture - grid[None]) ** 2).sum(-1)
    eps = torch.tensor(weights.eps, device=b.device)
    early = torch.relu(schedule.cdf(eps, b) - weights.delta) ** 2
    late = torch.relu(1.0 - schedule.cdf(1.0 - eps, b) - weights.delta) ** 2
    boundary_term = ((early + late) * m).sum(-1)
    kl_term = (kumaraswamy_kl_to_uniform(schedule.a, b) * m).sum(-1) / (count + 1e-9)
    return weights.mean * mean_term + weights.boundary * boundary_term + weights.kl * kl_term
