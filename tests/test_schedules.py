"""Kumaraswamy schedules (docs/methods/loflexmdm.md#schedules, docs/methods/loflexmdm.md#state-probabilities)
and the schedule regulariser (docs/methods/loflexmdm.md#regulariser)."""

import pytest
import torch

from insertgen.models.loflexmdm.regulariser import RegulariserWeights, kumaraswamy_kl_to_uniform, schedule_regulariser
from insertgen.models.schedules import KumaraswamySchedule, LinearSchedule

SETTINGS = [  # (a, b_in, b_um)
    (1.0, 1.0, 1.0), (1.0, 2.5, 1.0), (2.0, 0.7, 3.0), (1.5, 1.3, 1.3), (5.0, 4.0, 1.0), (0.6, 1.0, 8.0),
]


@pytest.mark.parametrize("a,b_in,b_um", SETTINGS)
def test_state_probabilities_match_monte_carlo(a, b_in, b_um):
    sched = KumaraswamySchedule(a)
    n = 1_000_000
    g = torch.Generator().manual_seed(0)
    t_in, t_um = sched.sample_event_times(torch.full((n,), b_in), b_um, generator=g)
    assert bool((t_in <= t_um).all()) and bool((t_in > 0).all()) and bool((t_um <= 1).all())
    for t in (0.1, 0.4, 0.75, 0.95):
        empirical = torch.stack([(t < t_in).double().mean(), ((t_in <= t) & (t < t_um)).double().mean(),
                                 (t_um <= t).double().mean()])
        log_probs = sched.state_log_probs(torch.tensor(t), torch.tensor(b_in), b_um)
        closed = torch.stack(log_probs).exp().double()
        assert (empirical - closed).abs().max() <= 3e-3, (t, empirical, closed)


def test_probabilities_sum_to_one_and_reduce_to_flexmdm():
    sched = KumaraswamySchedule(1.0)
    t = torch.linspace(0.01, 0.99, 50)
    for b_in, b_um in [(1.0, 1.0), (3.0, 0.5), (0.5, 3.0), (2.0, 2.0 + 1e-8)]:
        log_d, log_m, log_c = sched.state_log_probs(t, torch.full_like(t, b_in), b_um)
        total = log_d.exp() + log_m.exp() + log_c.exp()
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    # a = b = 1 is FlexMDM's linear schedule: P(D) = 1 - t, P(M) = -(1 - t) log(1 - t)
    log_d, log_m, _ = sched.state_log_probs(t, torch.ones_like(t), 1.0)
    assert torch.allclose(log_d.exp(), 1 - t, atol=1e-6)
    assert torch.allclose(log_m.exp(), -(1 - t) * torch.log(1 - t), atol=1e-6)
    assert torch.allclose(sched.hazard(t), LinearSchedule().hazard(t), rtol=1e-5)


def test_equal_rates_limit_is_continuous():
    sched = KumaraswamySchedule(2.0)
    t = torch.tensor([0.3, 0.8])
    at = sched.state_log_probs(t, torch.tensor([1.7, 1.7]), 1.7)[1]
    near = sched.state_log_probs(t, torch.tensor([1.7 + 1e-3, 1.7 + 1e-3]), 1.7)[1]
    assert torch.allclose(at, near, atol=2e-3)


@pytest.mark.parametrize("t", [1e-7, 1e-4, 0.5, 1 - 1e-4, 1 - 1e-7])
def test_log_probs_and_gradients_finite_near_the_ends(t):
    sched = KumaraswamySchedule(1.0)
    b_in = torch.tensor([0.5, 1.01, 2.0, 2.0, 50.0], requires_grad=True)
    b_um = torch.tensor([3.0, 1.0, 2.0, 1.0, 1.0], requires_grad=True)
    parts = sched.state_log_probs(torch.tensor(t), b_in, b_um)
    for part in parts:
        assert bool(torch.isfinite(part).all()) and bool((part <= 0).all())
    sum(p.sum() for p in parts).backward()
    assert bool(torch.isfinite(b_in.grad).all()) and bool(torch.isfinite(b_um.grad).all())


def test_hazard_is_pdf_over_survival_and_inverse_cdf_inverts():
    for a in (0.7, 1.0, 3.0):
        sched = KumaraswamySchedule(a)
        t = torch.linspace(0.02, 0.98, 49)
        for b in (0.5, 1.0, 4.0):
            bt = torch.full_like(t, b)
            assert torch.allclose(sched.hazard(t, bt), sched.pdf(t, bt) / sched.survival(t, bt), rtol=1e-4)
            u = sched.cdf(t, bt)
            ok = u < 0.999  # beyond, float32 cannot resolve 1 - F(t)
            assert torch.allclose(sched.inverse_cdf(u, bt)[ok], t[ok], atol=1e-4)
            # the pdf is the derivative of the cdf
            h = 1e-3
            numeric = (sched.cdf(t + h, bt) - sched.cdf(t - h, bt)) / (2 * h)
            assert torch.allclose(numeric, sched.pdf(t, bt), rtol=2e-2, atol=1e-3)
        # integrated hazard = -log S for b = 1
        assert torch.allclose(sched.integrated_hazard(torch.zeros_like(t), t), -torch.log(sched.survival(t)),
                              rtol=1e-4, atol=1e-6)


def test_regulariser_zero_for_uniform_and_positive_otherwise():
    sched = KumaraswamySchedule(1.0)
    active = torch.ones(3, 6, dtype=torch.bool)
    active[2, 4:] = False
    w = RegulariserWeights()
    uniform = schedule_regulariser(sched, torch.ones(3, 6), active, w)
    assert float(uniform.abs().max()) < 1e-6
    spread = torch.tensor([[1.01, 1.5, 3.0, 1.2, 9.0, 2.0]] * 3)
    assert bool((schedule_regulariser(sched, spread, active, w) > 1e-3).all())
    # each term on its own is positive away from uniform
    for weights in (RegulariserWeights(1, 0, 0), RegulariserWeights(0, 1, 0), RegulariserWeights(0, 0, 1)):
        value = schedule_regulariser(sched, torch.full((1, 4), 30.0), torch.ones(1, 4, dtype=torch.bool), weights)
        assert float(value) > 1e-3, weights
    assert torch.allclose(kumaraswamy_kl_to_uniform(1.0, torch.tensor([1.0])), torch.zeros(1), atol=1e-6)


def test_kl_to_uniform_matches_numerical_integral():
    a, b = 2.0, 3.0
    sched = KumaraswamySchedule(a)
    t = torch.linspace(1e-5, 1 - 1e-5, 200_001, dtype=torch.float64)
    pdf = (a * b * t ** (a - 1) * (1 - t ** a) ** (b - 1))
    numeric = torch.trapezoid(pdf * torch.log(pdf), t)
    assert abs(float(numeric) - float(kumaraswamy_kl_to_uniform(a, torch.tensor([b])))) < 1e-3
    del sched


def test_both_schedules_answer_the_schedule_protocol_and_the_linear_one_has_rate_one_only():
    from insertgen.models.schedules import Schedule

    for sched in (LinearSchedule(), KumaraswamySchedule(2.0)):
        assert isinstance(sched, Schedule)
    with pytest.raises(ValueError, match="rate 1 only"):
        LinearSchedule().cdf(torch.tensor([0.5]), b=2.0)
    t = torch.linspace(0.0, 0.99, 50, dtype=torch.float64)
    lin, kum = LinearSchedule(), KumaraswamySchedule(1.0)
    assert torch.allclose(kum.unmask_time_cdf(t).double(), lin.unmask_time_cdf(t), atol=1e-6)
    assert torch.allclose(kum.cdf(t).double(), lin.cdf(t), atol=1e-6)


@pytest.mark.parametrize("a", [0.5, 2.0])
def test_unmask_time_cdf_matches_monte_carlo_and_its_grid_spreads_the_unmasking_evenly(a):
    """The CDF of T_um at b = 1 (Gamma(2) on the schedule's clock) against 400,000 drawn event times, and
    the sampler's `unmask` grid built from it: every step holds 1/N of the unmasking events."""
    from insertgen.models.flexmdm.sampler import time_grid

    sched = KumaraswamySchedule(a)
    _, t_um = sched.sample_event_times(torch.ones(400_000), 1.0, generator=torch.Generator().manual_seed(1))
    for t in (0.1, 0.3, 0.6, 0.9):
        assert float((t_um <= t).double().mean()) == pytest.approx(float(sched.unmask_time_cdf(torch.tensor(t))),
                                                                   abs=3e-3)
    grid = time_grid("unmask", 12, unmask_cdf=sched.unmask_time_cdf)
    per_step = torch.tensor([float(((t_um > grid[k]) & (t_um <= grid[k + 1])).double().mean()) for k in range(12)])
    assert torch.allclose(per_step, torch.full((12,), 1 / 12, dtype=per_step.dtype), atol=3e-3)
    linear = time_grid("unmask", 12)
    assert (grid - linear).abs().max() > 0.02  # a schedule of another shape has another grid


def test_a_kumaraswamy_schedule_of_shape_one_gives_the_linear_grid_exactly():
    """Every shipped LoFlexMDM has a = 1, so its `unmask` grid, now taken from its own schedule, is the
    linear schedule's bit for bit at the step counts they sample with: their outputs do not change."""
    from insertgen.models.flexmdm.sampler import time_grid

    for steps in (40, 64, 128, 256):
        assert torch.equal(time_grid("unmask", steps),
                           time_grid("unmask", steps, unmask_cdf=KumaraswamySchedule(1.0).unmask_time_cdf))
