"""The variable-length noising process (docs/methods/flexmdm.md#process, docs/methods/flexmdm.md#estimator)
and the rate-matching loss (docs/methods/flexmdm.md#loss)."""

import math

import pytest
import torch

from insertgen.models.flexmdm.loss import poisson_bregman, rate_matching_loss
from insertgen.models.flexmdm.process import CLEAN, DELETED, MASKED, noise
from insertgen.models.schedules import LinearSchedule

PAD, MASK, BOS, EOS = 0, 1, 2, 3


def random_batch(B=64, prompt=5, max_target=9, vocab=20, seed=0):
    """[prompt, BOS, target, EOS, PAD...] rows of varying target length, and the fixed mask."""
    g = torch.Generator().manual_seed(seed)
    L = prompt + max_target + 2
    x1 = torch.full((B, L), PAD)
    fixed = torch.zeros(B, L, dtype=torch.bool)
    for b in range(B):
        n = int(torch.randint(1, max_target + 1, (1,), generator=g))
        row = torch.cat([torch.randint(4, vocab, (prompt,), generator=g), torch.tensor([BOS]),
                         torch.randint(4, vocab, (n,), generator=g), torch.tensor([EOS])])
        x1[b, : len(row)] = row
        fixed[b, : prompt + 1] = True
        fixed[b, len(row) - 1] = True
    return x1, fixed


def noised(x1, fixed, t, seed=1):
    g = torch.Generator().manual_seed(seed)
    t_in, t_um = LinearSchedule().sample_event_times(torch.ones(x1.shape), 1.0, g)
    return noise(x1, fixed, t, t_in, t_um, PAD, MASK)


def test_fixed_tokens_untouched_and_alignment_consistent():
    x1, fixed = random_batch()
    t = torch.rand(x1.shape[0], generator=torch.Generator().manual_seed(3))
    st = noised(x1, fixed, t)
    for b in range(x1.shape[0]):
        n = int(st.valid[b].sum())
        s = st.s_t[b, :n]
        assert torch.all(s[1:] > s[:-1]), "s_t must be strictly increasing"
        # every fixed token survives, unchanged, at its original index
        fixed_idx = fixed[b].nonzero().squeeze(1)
        assert set(fixed_idx.tolist()) <= set(s.tolist())
        for k in range(n):
            j = int(s[k])
            tok = int(st.x_t[b, k])
            if fixed[b, j]:
                assert tok == int(x1[b, j]) and st.state[b, j] == CLEAN
            elif st.state[b, j] == MASKED:
                assert tok == MASK
            else:
                assert st.state[b, j] == CLEAN and tok == int(x1[b, j])
            assert int(st.clean_tokens[b, k]) == int(x1[b, j])
        assert torch.all(st.x_t[b, n:] == PAD)
        # deleted tokens are exactly the aligned positions not listed in s_t (pads excluded)
        real = (x1[b] != PAD).nonzero().squeeze(1).tolist()
        missing = sorted(set(real) - set(s.tolist()))
        assert missing == st.deleted[b].nonzero().squeeze(1).tolist()


def test_gap_counts_add_up_and_match_brute_force():
    x1, fixed = random_batch(seed=5)
    t = torch.rand(x1.shape[0], generator=torch.Generator().manual_seed(4))
    st = noised(x1, fixed, t, seed=2)
    assert torch.equal(st.gap_count.sum(1), st.deleted.sum(1).float())
    values = torch.rand(x1.shape, generator=torch.Generator().manual_seed(9))
    sums = st.gap_sums(values)
    for b in range(x1.shape[0]):
        prev = -1
        for k in range(int(st.valid[b].sum())):
            j = int(st.s_t[b, k])
            expect_count = sum(1 for i in range(prev + 1, j) if st.deleted[b, i])
            expect_sum = sum(float(values[b, i]) for i in range(prev + 1, j) if st.deleted[b, i])
            assert st.gap_count[b, k] == expect_count
            assert sums[b, k] == pytest.approx(expect_sum, abs=1e-5)
            prev = j
    assert torch.all(sums[~st.valid] == 0)


def test_gap_sums_are_differentiable():
    x1, fixed = random_batch(B=8)
    st = noised(x1, fixed, torch.full((8,), 0.5))
    values = torch.rand(x1.shape, requires_grad=True)
    st.gap_sums(values).sum().backward()
    assert torch.equal(values.grad, st.deleted.float())  # each deleted token counted once, others not at all


@pytest.mark.parametrize("t", [0.1, 0.4, 0.7, 0.95])
def test_state_frequencies_match_linear_schedule(t):
    """P(D) = 1 - t, P(M) = (1 - t)(-log(1 - t)), P(clean) = the rest (T_in ~ U, T_um | T_in ~ U(T_in, 1))."""
    x1, fixed = random_batch(B=4000, seed=7)
    st = noised(x1, fixed, torch.full((x1.shape[0],), t), seed=11)
    active = ~fixed & (x1 != PAD)
    n = int(active.sum())
    freq = {s: float((st.state[active] == s).sum()) / n for s in (DELETED, MASKED, CLEAN)}
    p_d = 1 - t
    p_m = (1 - t) * -math.log(1 - t)
    expect = {DELETED: p_d, MASKED: p_m, CLEAN: 1 - p_d - p_m}
    for s in expect:
        sigma = math.sqrt(expect[s] * (1 - expect[s]) / n)
        assert abs(freq[s] - expect[s]) < 5 * sigma + 1e-4, (s, freq[s], expect[s])


def test_time_endpoints():
    x1, fixed = random_batch(B=16)
    start = noised(x1, fixed, torch.zeros(16))
    for b in range(16):
        n = int(start.valid[b].sum())
        assert torch.equal(start.x_t[b, :n], x1[b][fixed[b]])  # prompt + BOS + EOS only
    end = noised(x1, fixed, torch.full((16,), 1.0))
    assert torch.equal(end.x_t, x1[:, : end.x_t.shape[1]])
    assert not end.masked.any() and end.gap_count.sum() == 0


def test_bregman_divergence():
    p = torch.tensor([0.5, 2.0, 3.0, 1e-9])
    assert torch.allclose(poisson_bregman(p, p), torch.zeros(4), atol=1e-6)
    q = torch.tensor([1.0, 1.0, 5.0, 2.0])
    d = poisson_bregman(p, q)
    assert torch.all(d > 0)
    assert float(d[0]) == pytest.approx(1.0 - 0.5 + 0.5 * math.log(0.5), rel=1e-5)
    assert float(poisson_bregman(3 * p, 3 * q)[1]) == pytest.approx(3 * float(d[1]), rel=1e-5)  # D(cp, cq) = c D(p, q)


def test_insertion_loss_minimised_at_expected_gap_count():
    """For a fixed x_t, the mean insertion loss over targets is minimised at the mean gap count."""
    targets = torch.tensor([0.0, 1.0, 1.0, 4.0])  # gap counts seen with equal probability
    qs = torch.linspace(0.1, 5, 491)
    risk = torch.stack([poisson_bregman(targets, q.expand(4)).mean() for q in qs])
    assert float(qs[risk.argmin()]) == pytest.approx(float(targets.mean()), abs=0.011)


def test_rate_matching_loss_parts():
    B, L, V = 2, 4, 6
    logits = torch.randn(B, L, V)
    clean = torch.randint(0, V, (B, L))
    masked = torch.tensor([[True, False, True, False], [False, False, False, False]])
    valid = torch.ones(B, L, dtype=torch.bool)
    w = torch.full((B, L), 2.0)
    g_true = torch.tensor([[0.0, 2.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    g_model = torch.rand(B, L) + 0.1
    per_seq, parts = rate_matching_loss(logits, clean, masked, valid, w, w, w * g_true, w * g_model, norm_length=8)
    log_k = torch.log_softmax(logits, -1).gather(-1, clean[..., None]).squeeze(-1)
    ce = (-(2.0 * log_k) * masked).sum(1) / 8
    ins = (2.0 * poisson_bregman(g_true, g_model)).sum(1) / 8
    assert torch.allclose(per_seq, ce + ins, atol=1e-5)
    assert parts["unmask"][1] == 0
