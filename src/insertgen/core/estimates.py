"""A log-likelihood value with the standard error of its Monte-Carlo estimate (0 when it is exact)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Estimate(float):
    """A float (the estimate) that also carries ``stderr``, the standard error of its Monte-Carlo mean."""

    stderr: float

    def __new__(cls, value: float, stderr: float = 0.0):
        estimate = super().__new__(cls, value)
        estimate.stderr = float(stderr)
        return estimate

    def __repr__(self) -> str:
        return f"Estimate({float(self)!r}, stderr={self.stderr!r})"

    @classmethod
    def mean_of(cls, draws: Tensor) -> "Estimate":
        """The mean of M independent draws and its standard error ``std / sqrt(M)`` (0 for one draw)."""
        draws = draws.double().flatten()
        m = draws.numel()
        stderr = float(draws.std(unbiased=True)) / math.sqrt(m) if m > 1 else 0.0
        return cls(float(draws.mean()), stderr)

    @classmethod
    def log_mean_exp_of(cls, log_draws: Tensor) -> "Estimate":
        """``log((1/M) sum_m exp(log_draws_m))`` and its delta-method standard error
        ``std(w) / (sqrt(M) mean(w))`` with ``w = exp(log_draws)`` (the IWAE bound)."""
        log_draws = log_draws.double().flatten()
        m = log_draws.numel()
        value = float(torch.logsumexp(log_draws, 0) - math.log(m))
        w = torch.exp(log_draws - log_draws.max())
        stderr = float(w.std(unbiased=True) / (math.sqrt(m) * w.mean())) if m > 1 else 0.0
        return cls(value, stderr)
