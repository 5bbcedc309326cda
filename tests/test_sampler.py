"""The tau-leaping sampler (docs/methods/flexmdm.md#sampler) and token filtering."""

import pytest
import torch

from insertgen.core.sampling import filter_logits, sample_from_logits
from insertgen.models.flexmdm.sampler import (
    INSERTION_DRAWS,
    TauLeapingOptions,
    _insert_masks,
    _insertion_counts,
    tau_leaping_sample,
)

PAD, MASK, BOS, EOS = 0, 1, 2, 3
V = 10
BANNED = [PAD, MASK, BOS, EOS]


def canvas(prompts, width):
    tokens = torch.full((len(prompts), width), PAD)
    fixed = torch.zeros(len(prompts), width, dtype=torch.bool)
    for i, p in enumerate(prompts):
        tokens[i, : len(p) + 2] = torch.tensor(p + [BOS, EOS])
        fixed[i, : len(p) + 1] = True
    return tokens, fixed


def oracle_predictor(target_len: int, token: int = 7, favour_special: bool = False):
    """g = missing target tokens, all in the gap left of EOS; logits prefer ``token``
    (or, with ``favour_special``, prefer MASK/PAD/EOS so that banning them is tested)."""

    def predict(x, t):
        b, w = x.shape
        bos = (x == BOS).float().argmax(1)
        lengths = (x != PAD).sum(1)
        present = lengths - bos - 2  # tokens between BOS and EOS
        g = torch.zeros(b, w)
        g[torch.arange(b), lengths - 1] = (target_len - present).clamp_min(0).float()
        logits = torch.zeros(b, w, V)
        logits[..., token] = 5.0
        if favour_special:
            logits[..., MASK] = logits[..., PAD] = logits[..., EOS] = 50.0
        return logits, g, None

    return predict


def linear_hazard(t0, t1):
    return torch.log1p(-t0) - torch.log1p(-t1)


def run(predict, prompts, width=20, **opts):
    tokens, fixed = canvas(prompts, width)
    return tau_leaping_sample(predict, linear_hazard, tokens, fixed, BANNED, PAD, MASK,
                              TauLeapingOptions(**opts), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("confidence,order,draw", [(None, "joint", "sequence"), ("top_prob", "joint", "sequence"),
                                                   ("prob_diff", "joint", "binomial"), (None, "insert_first", "sequence"),
                                                   (None, "joint", "poisson"), (None, "insert_first", "poisson")])
def test_oracle_rates_give_the_right_length_and_well_formed_canvas(confidence, order, draw):
    """With g = the number of missing tokens the canvas stays [prompt, BOS, body, EOS] and gets that many
    tokens: always with the sequence and binomial draws (at most the missing count per step), on average
    with the Poisson tau-leap (an overshoot within one step is possible, as in the reference sampler)."""
    prompts = [[4, 5, 6], [8], [9, 9]] * 20
    out = run(oracle_predictor(6), prompts, steps=32, confidence=confidence, top_k=1, order=order,
              insertion_draw=draw)
    lengths = []
    for p, row, ins, um, evals in zip(prompts, out.tokens, out.insert_step, out.unmask_step, out.model_evals):
        assert row[: len(p) + 1] == p + [BOS]  # fixed prefix untouched
        assert row[-1] == EOS
        body = row[len(p) + 1 : -1]
        assert body == [7] * len(body)  # tokens from the logits, never MASK
        lengths.append(len(body))
        assert all(i >= 0 and u >= i for i, u in zip(ins[len(p) + 1 : -1], um[len(p) + 1 : -1]))
        assert ins[: len(p) + 1] == [-1] * (len(p) + 1) and um[-1] == -1
        assert 1 <= evals <= 33
    if draw == "poisson":
        assert sum(1 for n in lengths if n == 6) >= 0.8 * len(lengths)
        assert abs(sum(lengths) / len(lengths) - 6) < 0.3
    else:
        assert lengths == [6] * len(lengths)


@pytest.mark.parametrize("draw", INSERTION_DRAWS)
def test_every_insertion_draw_gives_each_gap_its_expected_count(draw):
    """E[c_k] = n_k p for every draw (closed form against Monte Carlo), and on the last interval (p = 1)
    every expected missing token arrives: round(n_k) per gap, or round(sum n_k) per sequence."""
    n = torch.tensor([[0.0, 0.5, 2.0, 1.3, 0.0, 0.2]]).repeat(40_000, 1)
    lengths = torch.full((n.shape[0],), 6)
    counts = _insertion_counts(n, torch.tensor(0.4), lengths, 10**6, torch.Generator().manual_seed(1), draw)
    mean = counts.float().mean(0)
    stderr = counts.float().std(0) / n.shape[0] ** 0.5
    assert torch.all((mean - 0.4 * n[0]).abs() <= 4 * stderr + 1e-6), (draw, mean)
    assert counts[:, 0].sum() == 0 and counts[:, 4].sum() == 0  # a gap that misses nothing gets nothing
    last = _insertion_counts(n[:1], torch.tensor(1.0), lengths[:1], 10**6, torch.Generator().manual_seed(1), draw)
    assert int(last.sum()) == (4 if draw == "sequence" else 0 + 0 + 2 + 1 + 0 + 0)


def test_binomial_draw_never_exceeds_the_rounded_up_count():
    n = torch.tensor([[1.0, 0.5, 2.0]]).repeat(20_000, 1)
    counts = _insertion_counts(n, torch.tensor(0.9), torch.full((20_000,), 3), 10**6,
                               torch.Generator().manual_seed(2), "binomial")
    assert torch.all(counts <= torch.ceil(n).long())
    poisson = _insertion_counts(n, torch.tensor(0.9), torch.full((20_000,), 3), 10**6,
                                torch.Generator().manual_seed(2), "poisson")
    assert bool((poisson > torch.ceil(n).long()).any())  # the tau-leap overshoots where p is large


def test_sequence_draw_inserts_an_ambiguous_token_once():
    """One missing token that may sit in either of two gaps (n = 0.5 each): per-gap draws insert it 0, 1 or
    2 times on the last interval or over a step with p = 1/2; the sequence draw never twice, and on the
    last interval exactly once, into either gap about equally often."""
    n = torch.tensor([[0.5, 0.5]]).repeat(20_000, 1)
    lengths = torch.full((20_000,), 2)
    gen = torch.Generator().manual_seed(3)
    half = _insertion_counts(n, torch.tensor(0.5), lengths, 10**6, gen, "sequence").sum(1)
    assert int(half.max()) == 1 and abs(half.float().mean().item() - 0.5) < 0.02
    assert int(_insertion_counts(n, torch.tensor(0.5), lengths, 10**6, gen, "poisson").sum(1).max()) >= 2
    last = _insertion_counts(n, torch.tensor(1.0), lengths, 10**6, gen, "sequence")
    assert torch.all(last.sum(1) == 1) and abs(last[:, 0].float().mean().item() - 0.5) < 0.02


def test_special_tokens_never_sampled():
    out = run(oracle_predictor(5, favour_special=True), [[4]], steps=16)
    body = out.tokens[0][2:-1]
    assert len(body) == 5 and all(tok >= 4 for tok in body)


def test_early_stop_when_nothing_left():
    out = run(oracle_predictor(0), [[4, 5]], steps=100)
    assert out.model_evals == [1] and out.tokens[0] == [4, 5, BOS, EOS]


def test_finished_sequences_leave_the_batch():
    """A sequence that needs no tokens stops after one evaluation while the other keeps going."""

    def predict(x, t):
        logits, g, _ = oracle_predictor(4)(x, t)
        g[x[:, 0] == 9] = 0.0  # prompts starting with 9 need nothing
        return logits, g, None

    out = run(predict, [[9], [4]], steps=50)
    assert out.model_evals[0] == 1 and out.model_evals[1] > 1
    assert out.tokens[0] == [9, BOS, EOS] and len(out.tokens[1]) == 3 + 4


@pytest.mark.parametrize("draw", ["poisson", "binomial", "sequence"])
def test_insertions_that_would_overflow_the_buffer_are_dropped_for_that_sequence_only(draw):
    """A sequence of length 4 in a buffer of 6 takes one new mask (4 + 1 <= 6) but not three (4 + 3 > 6); the
    sampler then skips the draws that would overflow and never writes past the buffer."""
    n_missing = torch.tensor([[0.0, 3.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    counts = _insertion_counts(n_missing, torch.tensor(1.0), torch.tensor([4, 4]), 6, None, draw)
    assert counts.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0]]
    out = run(oracle_predictor(30), [[4]], width=8, steps=8, insertion_draw=draw)  # 30 missing never fit in 8
    row = out.tokens[0]
    assert len(row) <= 8 and row[:2] == [4, BOS] and row[-1] == EOS and not {PAD, MASK, BOS, EOS} & set(row[2:-1])


def test_insert_masks_matches_python_reference():
    x = torch.tensor([[4, 5, 6, 3, 0, 0, 0, 0, 0, 0], [7, 8, 3, 0, 0, 0, 0, 0, 0, 0]])
    lengths = (x != 0).sum(1)
    counts = torch.zeros_like(x)
    counts[0, 1], counts[0, 3], counts[1, 0], counts[1, 2] = 2, 1, 1, 3
    (new,) = _insert_masks(counts, lengths, [x], [MASK])
    for b in range(2):
        expect = []
        for k in range(int(lengths[b])):
            expect += [MASK] * int(counts[b, k]) + [int(x[b, k])]
        assert new[b, : len(expect)].tolist() == expect


def test_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.1))
    assert kept.tolist() == [[True, False, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_k=3))
    assert kept.tolist() == [[True, True, True, False]]


def test_sampling_frequencies_follow_the_distribution():
    probs = torch.tensor([0.6, 0.3, 0.1, 0.0])
    logits = torch.log(probs).expand(20000, 4)
    draws = sample_from_logits(logits, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, probs, atol=0.015)
    banned = torch.tensor([True, False, False, False])
    draws = sample_from_logits(logits, generator=torch.Generator().manual_seed(0), banned=banned)
    assert not (draws == 0).any()


def test_insert_first_inserts_everything_before_unmasking():
    out = run(oracle_predictor(6), [[4, 5]], steps=16, order="insert_first", top_k=1)
    ins, um = out.insert_step[0][3:-1], out.unmask_step[0][3:-1]
    assert len(ins) == 6 and max(ins) < 8 <= min(um)
    per_step = [um.count(s) for s in range(8, 16)]
    assert sum(per_step) == 6 and max(per_step) == 1  # ceil(masked / steps left) = one per step here


def test_sampler_options_are_validated():
    for bad in ({"steps": 0}, {"confidence": "maybe"}, {"top_p": 1.5}, {"top_k": 0}, {"order": "random"},
                {"order": "insert_first", "steps": 1}, {"unmask_time": 1.0}):
        with pytest.raises(ValueError):
            TauLeapingOptions(**bad)


def test_unmask_time_grid_puts_equal_unmasking_mass_in_every_step():
    """time_grid("unmask") = quantiles of T_um (linear schedule: T_in ~ U(0,1), T_um | T_in ~ U(T_in, 1)):
    the closed-form CDF matches Monte Carlo, and each step holds 1/N of the unmasking events."""
    from insertgen.models.flexmdm.sampler import time_grid
    from insertgen.models.schedules import LinearSchedule

    unmask_time_cdf = LinearSchedule().unmask_time_cdf

    g = torch.Generator().manual_seed(0)
    t_in = torch.rand(400_000, generator=g, dtype=torch.float64)
    t_um = t_in + (1 - t_in) * torch.rand(400_000, generator=g, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9, 0.99):
        assert float((t_um <= t).double().mean()) == pytest.approx(float(unmask_time_cdf(torch.tensor(t, dtype=torch.float64))), abs=3e-3)
    grid = time_grid("unmask", 16)
    assert grid[0] == 0 and grid[-1] == 1 and bool((grid[1:] > grid[:-1]).all())
    per_step = torch.tensor(
        [float(((t_um > grid[k].double()) & (t_um <= grid[k + 1].double())).double().mean()) for k in range(16)])
    assert torch.allclose(per_step, torch.full((16,), 1 / 16, dtype=per_step.dtype), atol=3e-3)
    assert torch.equal(time_grid("uniform", 4), torch.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="grid must be one of"):
        TauLeapingOptions(grid="cosine")


def test_the_samplers_parts_are_objects_that_can_be_swapped():
    """TauLeapingSampler with its own insertion draw (here: at most one new mask per sequence and step,
    in the first open gap) and its own grid: the oracle's 5 tokens then take 5 insertion steps, and the
    sampler evaluates the grid it was given."""
    from insertgen.models.flexmdm.sampler import TauLeapingSampler, UniformGrid

    class OneAtATime:
        name = "one"

        def counts(self, n_missing, p, generator):
            counts = torch.zeros_like(n_missing, dtype=torch.long)
            has = n_missing.sum(1) >= 0.5
            first = (n_missing > 0).float().argmax(1)
            counts[has, first[has]] = 1
            return counts

    class Recorded(UniformGrid):
        asked: list = []

        def times(self, steps, device=None):
            self.asked.append(steps)
            return super().times(steps, device)

    tokens, fixed = canvas([[4, 5]], 20)
    grid = Recorded()
    sampler = TauLeapingSampler(oracle_predictor(5), linear_hazard, TauLeapingOptions(steps=12, top_k=1),
                                BANNED, PAD, MASK, draw=OneAtATime(), grid=grid)
    out = sampler.run(tokens, fixed, torch.Generator().manual_seed(0))
    body = out.tokens[0][3:-1]  # after prompt and BOS, before EOS
    assert body == [7] * 5 and grid.asked == [12]
    assert sorted(out.insert_step[0][3:-1]) == [0, 1, 2, 3, 4]  # one new mask per step
