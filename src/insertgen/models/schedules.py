"""Insertion and unmasking schedules.

A schedule is the CDF ``F(t)`` of a token's event time on ``[0, 1]`` (``F(0) = 0``, ``F(1) = 1``).
The matching continuous-time Markov chain jumps with hazard ``h(t) = F'(t) / (1 - F(t))``.

FlexMDM (docs/methods/flexmdm.md#schedules) uses the linear schedule for both events:

    F(t) = t,   h(t) = 1 / (1 - t),   F^{-1}(u) = u

Event times of one token (docs/methods/flexmdm.md#schedules): insertion ``T_in ~ F`` (mapped to
``eps + (1 - eps) U`` so it is never exactly 0), then unmasking ``T_um ~ F`` truncated to ``[T_in, 1]``:

    T_um = F^{-1}(U_2 (1 - F(T_in)) + F(T_in))
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Schedule(Protocol):
    """What every event-time schedule answers, for a token of rate ``b`` (1: the schedule's own shape; only
    the Kumaraswamy schedule takes other rates): its CDF, density, hazard and inverse CDF at times ``t``;
    the hazard integrated over ``[t0, t1]`` at ``b = 1`` (what the tau-leaping sampler steps by); the CDF of
    a token's *unmasking* time at ``b = 1`` (``T_in ~ F``, ``T_um`` from ``F`` truncated to ``[T_in, 1]``;
    the sampler's ``unmask`` grid takes its quantiles); and event times drawn for rates ``b_in``, ``b_um``."""

    name: str

    def cdf(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor: ...

    def pdf(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor: ...

    def hazard(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor: ...

    def inverse_cdf(self, u: Tensor, b: Tensor | float = 1.0) -> Tensor: ...

    def integrated_hazard(self, t0: Tensor, t1: Tensor) -> Tensor: ...

    def unmask_time_cdf(self, t: Tensor) -> Tensor: ...

    def sample_event_times(self, b_in: Tensor, b_um: Tensor | float = 1.0,
                           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]: ...


def _unit_rate(b) -> None:
    if not (isinstance(b, (int, float)) and b == 1):
        raise ValueError("the linear schedule has rate 1 only (the Kumaraswamy schedule takes other rates)")


class LinearSchedule:
    """``F(t) = t``: the uniform event-time distribution of FlexMDM (Kim et al. 2025); every token has rate 1."""

    name = "linear"

    def __init__(self, eps: float = 1e-6):
        self.eps = eps

    def cdf(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        _unit_rate(b)
        return t.clamp(0.0, 1.0)

    def pdf(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        _unit_rate(b)
        return torch.ones_like(t)

    def hazard(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        """h(t) = 1 / (1 - t), in float32."""
        _unit_rate(b)
        return 1.0 / (1.0 - t.float())

    def inverse_cdf(self, u: Tensor, b: Tensor | float = 1.0) -> Tensor:
        _unit_rate(b)
        return u

    def integrated_hazard(self, t0: Tensor, t1: Tensor) -> Tensor:
        """∫_{t0}^{t1} h(s) ds = log((1 - t0) / (1 - t1))."""
        return torch.log1p(-t0.float()) - torch.log1p(-t1.float())

    def unmask_time_cdf(self, t: Tensor) -> Tensor:
        """P(T_um <= t) with T_in ~ U(0, 1), T_um | T_in ~ U(T_in, 1): the density is -ln(1 - t), so
        F_um(t) = t + (1 - t) ln(1 - t)."""
        return t + (1.0 - t) * torch.log1p(-t.clamp(max=1.0 - 1e-15))

    def sample_event_times(self, b_in: Tensor, b_um: Tensor | float = 1.0,
                           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(T_in, T_um) with ``b_in``'s shape and device (its values must be 1): T_in = eps + (1 - eps) U_1,
        T_um | T_in ~ F truncated to [T_in, 1]."""
        _unit_rate(b_um)
        u1 = torch.rand(b_in.shape, generator=generator, device=b_in.device)
        u2 = torch.rand(b_in.shape, generator=generator, device=b_in.device)
        t_in = self.inverse_cdf(self.eps + (1.0 - self.eps) * u1)
        f_in = self.cdf(t_in)
        t_um = self.inverse_cdf(u2 * (1.0 - f_in) + f_in)
        return t_in, t_um


def _log_phi(x: Tensor) -> Tensor:
    """log((1 - e^{-x}) / x), stable for every real x (value 0 at x = 0).

    Used for ``P(M)`` of the Kumaraswamy schedule without branching on the sign of ``b_in - b_um``."""
    small = x.abs() < 1e-4
    xs = torch.where(small, torch.ones_like(x), x)  # keep the unused branches finite
    pos = torch.log(-torch.expm1(-xs.clamp_min(1e-4))) - torch.log(xs.clamp_min(1e-4))
    y = (-xs).clamp_min(1e-4)
    neg = y + torch.log(-torch.expm1(-y)) - torch.log(y)
    series = -x / 2 + x * x / 24
    return torch.where(small, series, torch.where(x > 0, pos, neg))


class KumaraswamySchedule:
    """Per-token Kumaraswamy event-time distributions of LoFlexMDM (docs/methods/loflexmdm.md#schedules).

    For a global shape ``a > 0`` and a per-token rate ``b > 0``:

        F(t) = 1 - (1 - t^a)^b          S(t) = (1 - t^a)^b          f(t) = a b t^(a-1) (1 - t^a)^(b-1)
        h(t) = f / S = b * a t^(a-1) / (1 - t^a)                  (linear in b)
        F^{-1}(u) = (1 - (1 - u)^(1/b))^(1/a)
        Lambda(t) = int_0^t h / b = tau(t) = -log(1 - t^a)         (the "clock" shared by every token)

    Exponential-race view: ``tau(T_in) ~ Exp(b_in)`` and ``tau(T_um) = tau(T_in) + Exp(b_um)``, which is
    the unmasking time drawn from ``F_{b_um}`` truncated to ``[T_in, 1]``. With ``u = 1 - t^a`` and
    ``L = -log u`` the state of a token at time t has the closed-form probabilities

        P(D) = u^b_in
        P(M) = b_in (u^b_um - u^b_in) / (b_in - b_um) = b_in L e^{-b_um L} phi((b_in - b_um) L),
               phi(x) = (1 - e^{-x}) / x   (phi(0) = 1 gives the b_in -> b_um limit b L u^b)
        P(clean) = 1 - P(D) - P(M)

    computed in log space (docs/methods/loflexmdm.md#state-probabilities; ``t^a`` clamped to
    ``[1e-12, 1 - 1e-7]``; ``log P(clean)`` uses ``log(1 - P(D) - P(M))`` with the sum clamped to
    ``<= exp(-1e-7)``). With ``a = 1`` and ``b = 1`` this is FlexMDM's :class:`LinearSchedule`.
    """

    name = "kumaraswamy"

    def __init__(self, a: float = 1.0):
        if a <= 0:
            raise ValueError(f"the Kumaraswamy shape a must be positive, not {a}")
        self.a = float(a)

    def _ta(self, t: Tensor) -> Tensor:
        return t.float().clamp(0.0, 1.0) ** self.a

    def cdf(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        return -torch.expm1(b * torch.log1p(-self._ta(t).clamp_max(1.0 - 1e-7)))

    def survival(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        return torch.exp(b * torch.log1p(-self._ta(t).clamp_max(1.0 - 1e-7)))

    def pdf(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        t = t.float()
        ta = self._ta(t).clamp_max(1.0 - 1e-7)
        return self.a * b * t.clamp_min(1e-12) ** (self.a - 1) * torch.exp((b - 1) * torch.log1p(-ta))

    def shape_hazard(self, t: Tensor) -> Tensor:
        """h_a(t) = a t^(a-1) / (1 - t^a): the hazard of a token with b = 1."""
        t = t.float()
        ta = self._ta(t).clamp_max(1.0 - 1e-7)
        return self.a * t.clamp_min(1e-12) ** (self.a - 1) / (1.0 - ta)

    def hazard(self, t: Tensor, b: Tensor | float = 1.0) -> Tensor:
        return b * self.shape_hazard(t)

    def inverse_cdf(self, u: Tensor, b: Tensor | float = 1.0) -> Tensor:
        return (-torch.expm1(torch.log1p(-u.float().clamp(0.0, 1.0 - 1e-7)) / b)) ** (1.0 / self.a)

    def clock(self, t: Tensor) -> Tensor:
        """tau(t) = -log(1 - t^a)."""
        return -torch.log1p(-self._ta(t).clamp_max(1.0 - 1e-7))

    def integrated_hazard(self, t0: Tensor, t1: Tensor) -> Tensor:
        """int_{t0}^{t1} h_a(s) ds = tau(t1) - tau(t0) for b = 1 (multiply by b for a token's rate);
        infinite when t1 = 1."""
        t1 = torch.as_tensor(t1).float()
        out = self.clock(t1) - self.clock(torch.as_tensor(t0))
        return torch.where(t1 >= 1.0, torch.full_like(out, float("inf")), out)

    def unmask_time_cdf(self, t: Tensor) -> Tensor:
        """P(T_um <= t) at b = 1: on the clock, tau(T_um) = E_1 + E_2 is Gamma(2, 1), so
        F_um(t) = 1 - e^{-tau} (1 + tau) = 1 - (1 - t^a)(1 + tau(t)); with a = 1 the linear schedule's."""
        ta = t.clamp(0.0, 1.0) ** self.a  # in t's own precision: the sampler's grid is found in float64
        tau = -torch.log1p(-ta.clamp(max=1.0 - 1e-15))
        return -torch.expm1(-tau) - tau * torch.exp(-tau)

    def sample_event_times(self, b_in: Tensor, b_um: Tensor | float = 1.0,
                           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(T_in, T_um) with b_in's shape: the exponential race on the tau clock (no gradient)."""
        with torch.no_grad():
            b_in = b_in.float()
            e1 = torch.empty_like(b_in).exponential_(generator=generator)
            e2 = torch.empty_like(b_in).exponential_(generator=generator)
            tau_in = e1 / b_in
            tau_um = tau_in + e2 / b_um
            to_time = lambda tau: (-torch.expm1(-tau)) ** (1.0 / self.a)  # noqa: E731
            return to_time(tau_in), to_time(tau_um)

    def state_log_probs(self, t: Tensor, b_in: Tensor, b_um: Tensor | float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """(log P(D), log P(M), log P(clean)) at time t (broadcast against b_in, b_um), differentiable in b."""
        ta = self._ta(t).clamp(1e-12, 1.0 - 1e-7)
        log_u = torch.log1p(-ta)  # -L
        big_l = -log_u
        b_in = b_in.float()
        b_um = torch.as_tensor(b_um, dtype=torch.float32, device=b_in.device)
        log_d = b_in * log_u
        log_m = (torch.log(b_in) + torch.log(big_l) + b_um * log_u + _log_phi((b_in - b_um) * big_l)).clamp_max(0.0)
        log_gone = torch.logaddexp(log_d, log_m).clamp_max(-1e-7)
        log_clean = torch.log(-torch.expm1(log_gone))
        return log_d, log_m, log_clean


def stratified_times(batch_size: int, t_min: float, t_max: float, generator: torch.Generator | None,
                     device=None) -> Tensor:
    """t_i = t_min + (i + u_i)(t_max - t_min) / B, i = 0..B-1, u_i ~ U(0, 1): one time per sequence."""
    u = torch.rand(batch_size, generator=generator, device=device)
    return t_min + (torch.arange(batch_size, device=device) + u) * ((t_max - t_min) / batch_size)
