"""Tau-leaping sampler for variable-length masked diffusion (docs/methods/flexmdm.md#sampler).

State: a canvas ``[prompt, BOS, ..., EOS, PAD...]``; prompt and BOS are fixed. On a time grid
``0 = t_0 < ... < t_N = 1`` (uniform, or ``grid="unmask"``: equal expected numbers of unmasking events
per step, :func:`time_grid`) each step n evaluates the model once on ``(x, t_n)`` and applies, with
``dLam = Lam(t_{n+1}) - Lam(t_n)`` the integrated hazard of the schedule over the step:

- unmasking: each masked slot k fires with probability ``1 - exp(-b_um_k dLam)`` (at least one event
  of its Poisson clock; ``b_um = 1`` for FlexMDM, so ``p = dt / (1 - t_n)``, exact for the linear
  schedule); a fired slot takes a token drawn from ``K_theta(. | x, k)`` (top-k / top-p / temperature;
  PAD, MASK, BOS and EOS are never drawn). In a confidence mode (``top_prob``: max_v K;
  ``prob_diff``: top1 - top2 of K) the NUMBER of fired slots is kept (so the hazard still sets how many
  tokens appear per step, unlike the reference FlexMDM code) but the slots are the highest-scoring
  masked ones;
- insertion: gap k (left of token k, after BOS; with a prompt given in the canvas also around and
  between its fixed tokens) has the model's insertion multiplier
  ``g_k`` (the gap's rate is ``g_k h(t)``). Reading the gap as ``g_k / u`` missing tokens of rate ``u``
  each (``u`` = ``insertion_unit``), each of them arriving in the step with probability
  ``p = 1 - exp(-u dLam)``. ``insertion_draw="sequence"`` (default) draws the sequence's number of new
  masks, ``Binomial(N, p)`` with ``N`` the stochastically rounded ``sum_k g_k / u``, and places them in
  gaps drawn in proportion to ``g_k``; ``"binomial"`` draws ``Binomial(round_stochastic(g_k / u), p)`` per
  gap; ``"poisson"`` (the reference's tau-leap) ``Poisson((g_k / u) p)`` per gap. All three give each gap
  the mean ``(g_k / u) p`` and the same continuous-time limit; at a finite step the per-gap draws
  overshoot (Poisson) or insert one token that may sit in either of two gaps into both, which the
  sequence draw does not (docs/lab/learning.md, row 18). On the last interval (``dLam = inf``) every expected
  token arrives: ``round(g_k / u)`` per gap, or for ``sequence`` ``round(sum_k g_k / u)`` per sequence.
  For FlexMDM ``u = 1`` and ``g_k`` is the expected number of missing tokens. For LoFlexMDM ``g_k`` is
  the expected *sum of rates* of the missing tokens; ``u`` = the auxiliary network's minimum rate, which
  makes small steps the plain tau-leap ``Poisson(g_k dLam)`` and counts the last survivors (the slowest
  tokens, whose rates approach the minimum as t -> 1) at the end. A step that would overflow the buffer
  inserts nothing in that sequence (docs/methods/flexmdm.md#differences-from-the-reference-implementation).

With ``order="insert_first"`` the steps are split in two phases. Phase 1 (``steps // 2`` steps on its
own grid over ``[0, 1]``) only inserts, as above, so that every mask is in place; phase 2 (the other
steps) only unmasks, ``ceil(#masked / steps left)`` slots per step, chosen by confidence (``top_prob``
unless another mode is given), feeding the model the fixed time ``unmask_time``. Once no insertion is
pending the rest of the sequence is plain masked-diffusion decoding, so with exact posteriors any
unmasking order samples the same distribution (FlexMDM Prop. 3); choosing the confident slots first
lets each step rely on the tokens revealed before it (e.g. path endpoints before the junction).

The sampler is an object, :class:`TauLeapingSampler` (``step`` is one update, ``run`` the loop), whose
parts can be swapped: the time grid (:class:`UniformGrid`, :class:`UnmaskGrid` of the model's own
schedule), the insertion draw (:class:`SequenceDraw`, :class:`BinomialDraw`, :class:`PoissonDraw`) and the
slot selector (:class:`SlotSelector`: drawn slots, or the most confident ones).

A sequence is finished when no mask is left and its expected remaining insertions ``sum_k g_k / u`` are
below ``stop_threshold``; finished sequences leave the batch, so later steps cost nothing for them.
Masks left after step N are filled by argmax in one more evaluation. The sampler counts the model
evaluations spent on each sequence and records, for every final token, the step at which it was
inserted and the step at which it was unmasked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from insertgen.core.sampling import (
    SampleOutput,
    SamplerOptions,
    confidence_scores,
    option,
    sample_from_logits,
)
from insertgen.models.schedules import LinearSchedule

# predict(tokens (b, W), t (b,)) -> (logits (b, W, V), insert multiplier g (b, W), unmask multiplier (b, W) or None)
Predictor = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor | None]]


ORDERS = ("joint", "insert_first")
GRIDS = ("uniform", "unmask")
INSERTION_DRAWS = ("poisson", "binomial", "sequence")


@dataclass
class TauLeapingOptions(SamplerOptions):
    """The tau-leaping sampler's options beyond every sampler's (module docstring)."""

    steps: int = option(128, "Sampler time steps.", low=1)
    stop_threshold: float = option(0.05, "A sequence is finished once no mask is left and its expected remaining "
                                   "insertions are below this.", low=0.0)
    order: str = option("joint", "joint: insert and unmask together (tau-leaping); insert_first: all insertions, "
                        "then confidence-ordered unmasking.", choices=ORDERS)
    unmask_time: float = option(0.9, "insert_first: the time fed to the model while unmasking.", low=0.0, high=1.0,
                                high_open=True)
    grid: str = option("uniform", "Time grid of the tau-leaping steps: uniform in t, or equal expected unmasking "
                       "events per step (more steps late, where most tokens are decided).", choices=GRIDS)
    insertion_draw: str = option("sequence", "How the tau-leaping sampler draws new masks: one count per sequence "
                                 "spread over the gaps, per gap from a binomial, or per gap from a Poisson (the plain "
                                 "tau-leap; docs/methods/flexmdm.md#joint-order).",
                                 choices=INSERTION_DRAWS)

    def __post_init__(self):
        super().__post_init__()  # each field against its declaration
        if self.order == "insert_first" and self.steps < 2:
            raise ValueError("order='insert_first' needs at least 2 steps")



# ----- the time grid -----

class UniformGrid:
    """t_n = n / N."""

    def times(self, steps: int, device=None) -> Tensor:
        return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).to(device=device, dtype=torch.float32)


@dataclass(frozen=True)
class UnmaskGrid:
    """t_n = F^{-1}(n / N) with F the unmasking-time CDF of the model's own schedule (``unmask_cdf``:
    ``Schedule.unmask_time_cdf``), found by bisection in float64, so that every step expects the same
    number of tokens to be decided; under the linear schedule most are decided late (the density
    -ln(1 - t) grows without bound), where the uniform grid makes each step decide many tokens at once
    from one model evaluation."""

    unmask_cdf: Callable[[Tensor], Tensor] = LinearSchedule().unmask_time_cdf

    def times(self, steps: int, device=None) -> Tensor:
        u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        lo, hi = torch.zeros_like(u), torch.ones_like(u)
        for _ in range(64):  # bisection: F is increasing on [0, 1]
            mid = (lo + hi) / 2
            below = self.unmask_cdf(mid) < u
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        u = (lo + hi) / 2
        u[0], u[-1] = 0.0, 1.0
        return u.to(device=device, dtype=torch.float32)


def make_grid(kind: str, unmask_cdf: Callable[[Tensor], Tensor] | None = None):
    """The grid object of option ``grid`` (``uniform`` or ``unmask``)."""
    if kind == "uniform":
        return UniformGrid()
    if kind == "unmask":
        return UnmaskGrid(unmask_cdf) if unmask_cdf is not None else UnmaskGrid()
    raise ValueError(f"grid must be one of {', '.join(GRIDS)}, not {kind!r}")


def time_grid(kind: str, steps: int, device=None,
              unmask_cdf: Callable[[Tensor], Tensor] = LinearSchedule().unmask_time_cdf) -> Tensor:
    """The sampler's times 0 = t_0 < t_1 < ... < t_N = 1 (float32, N = ``steps``) on grid ``kind``
    (:class:`UniformGrid`, :class:`UnmaskGrid` of ``unmask_cdf``)."""
    return make_grid(kind, unmask_cdf).times(steps, device)


# ----- the canvas: inserting new slots -----

def _insert_masks(counts: Tensor, lengths: Tensor, columns: list[Tensor], fills: list) -> list[Tensor]:
    """Insert ``counts[b, k]`` new slots left of slot k in every tensor of ``columns`` (b, W).

    Old slot k (k < length) moves to ``k + sum_{j <= k} counts[b, j]``; every other slot takes the
    matching value of ``fills`` (the caller then blanks the slots past the new length)."""
    width = counts.shape[1]
    new_pos = torch.arange(width, device=counts.device)[None] + counts.cumsum(1)
    rows, slots = (torch.arange(width, device=counts.device)[None] < lengths[:, None]).nonzero(as_tuple=True)
    targets = new_pos[rows, slots]
    out = []
    for col, fill in zip(columns, fills):
        new = torch.full_like(col, fill)
        new[rows, targets] = col[rows, slots]
        out.append(new)
    return out


def _insert_new_masks(counts: Tensor, lengths: Tensor, inserted: Tensor, x: Tensor, ins_step: Tensor,
                      um_step: Tensor, step: int, mask_id: int, pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """The canvases with ``counts[b, k]`` new masks left of slot k, recorded as inserted at ``step``."""
    buffer_len = x.shape[1]
    counts = torch.nn.functional.pad(counts, (0, buffer_len - counts.shape[1]))
    x, ins_step, um_step = _insert_masks(counts, lengths, [x, ins_step, um_step], [mask_id, step, -1])
    beyond = torch.arange(buffer_len, device=x.device)[None] >= (lengths + inserted)[:, None]
    return x.masked_fill(beyond, pad_id), ins_step.masked_fill(beyond, -1), um_step


# ----- the slot selector: which masked slots are decided in a step -----

@dataclass(frozen=True)
class SlotSelector:
    """Which masked slots to unmask (b, W) bool: each masked slot independently with probability ``p_fire``,
    or (``p_fire=None``) ``n_fire`` (b, 1) of them. With a confidence ``mode`` (``top_prob`` / ``prob_diff``)
    the number of fired slots is kept and the slots are re-chosen as the most confident masked ones; with
    ``mode=None`` they stay the ones drawn."""

    mode: str | None = None

    def choose(self, masked: Tensor, logits: Tensor, banned: Tensor, p_fire: Tensor | None, n_fire: Tensor | None,
               generator: torch.Generator | None) -> Tensor:
        if p_fire is not None:
            fire = masked & (torch.rand(masked.shape, generator=generator, device=masked.device) < p_fire)
            n_fire = fire.sum(1, keepdim=True)
        else:
            fire = masked
        if self.mode is None or not bool(fire.any()):
            return fire
        probs = torch.softmax(logits.float().masked_fill(banned, float("-inf")), dim=-1)
        score = confidence_scores(probs, self.mode).masked_fill(~masked, float("-inf"))
        rank = torch.argsort(torch.argsort(score, dim=1, descending=True), dim=1)
        return masked & (rank < n_fire)


# ----- the insertion draw: how many new masks each gap receives in a step -----

def _stochastic_round(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """``floor(x) + Bernoulli(x - floor(x))``: an integer with mean ``x``."""
    base = torch.floor(x)
    return base + (torch.rand(x.shape, generator=generator, device=x.device) < x - base).float()


class PoissonDraw:
    """``Poisson(n p)`` per gap with ``n = n_missing`` (the tau-leap), or ``round(n)`` when ``p = 1``."""

    name = "poisson"

    def counts(self, n_missing: Tensor, p: Tensor, generator: torch.Generator | None) -> Tensor:
        if float(p) >= 1.0:
            return torch.round(n_missing).long()
        return torch.poisson(n_missing * p, generator=generator).long()


class BinomialDraw:
    """Each of ``N`` missing tokens of a gap arrives with probability ``p``, ``Binomial(N, p)``, where ``N``
    is ``n`` rounded stochastically (``E[N] = n``): the tau-leap's mean ``n p``, exact when the gap's missing
    count is known, and never more masks than ``ceil(n)``, where the Poisson draw overshoots when ``p`` is
    large (the last steps); ``round(n)`` when ``p = 1``."""

    name = "binomial"

    def counts(self, n_missing: Tensor, p: Tensor, generator: torch.Generator | None) -> Tensor:
        if float(p) >= 1.0:
            return torch.round(n_missing).long()
        return torch.binomial(_stochastic_round(n_missing, generator), torch.full_like(n_missing, float(p)),
                              generator=generator).long()


class SequenceDraw:
    """One count per sequence: ``T ~ Binomial(N, p)`` with ``N`` the stochastically rounded total
    ``sum_k n_k`` (``round`` when ``p = 1``), placed into gaps drawn with probability ``n_k / sum_k n_k``
    (with replacement). Each gap's mean stays ``n_k p``, but the gaps are no longer independent: one missing
    token that could sit in either of two gaps (``n = 0.5`` each) is inserted once, not 0, 1 or 2 times."""

    name = "sequence"

    def counts(self, n_missing: Tensor, p: Tensor, generator: torch.Generator | None) -> Tensor:
        p = float(p)
        total_missing = n_missing.sum(1)
        if p >= 1.0:
            totals = torch.round(total_missing)
        else:
            totals = torch.binomial(_stochastic_round(total_missing, generator), torch.full_like(total_missing, p),
                                    generator=generator)
        totals = totals.long()
        counts = torch.zeros_like(n_missing, dtype=torch.long)
        rows = (totals > 0).nonzero().squeeze(1)
        if rows.numel():
            most = int(totals[rows].max())
            picks = torch.multinomial(n_missing[rows].clamp(min=0), most, replacement=True, generator=generator)
            keep = (torch.arange(most, device=n_missing.device)[None] < totals[rows, None]).long()
            counts[rows] = counts[rows].scatter_add(1, picks, keep)
        return counts


INSERTION_DRAW = {draw.name: draw for draw in (PoissonDraw(), BinomialDraw(), SequenceDraw())}  # option insertion_draw


def _insertion_counts(n_missing: Tensor, p_ins: Tensor, lengths: Tensor, buffer_len: int,
                      generator: torch.Generator | None, draw="poisson") -> Tensor:
    """New masks per gap (b, W) by ``draw`` (a draw object, or the name of one in :data:`INSERTION_DRAW`);
    zero for a sequence whose insertions would overflow the buffer."""
    draw = INSERTION_DRAW[draw] if isinstance(draw, str) else draw
    counts = draw.counts(n_missing, p_ins, generator)
    counts[lengths + counts.sum(1) > buffer_len] = 0
    return counts


# ----- the sampler -----

@dataclass
class _Batch:
    """The sequences still being generated, and what the sampler records for every sequence."""

    x: Tensor  # canvases (b, W_buf)
    ins_step: Tensor  # per slot: step its mask was inserted (-1: initial canvas)
    um_step: Tensor  # per slot: step it was unmasked (-1: never masked)
    alive: Tensor  # indices (into the full batch) of these rows
    open_from: Tensor  # per row: the first gap that may receive insertions
    evals: Tensor  # model evaluations per sequence of the full batch
    out_rows: list  # finished sequences (tokens, insert steps, unmask steps), by full-batch index
    forward_calls: int = 0

    def finish(self, local: Tensor, pad_id: int) -> None:
        for i in local.tolist():
            n = int((self.x[i] != pad_id).sum())
            self.out_rows[int(self.alive[i])] = (self.x[i, :n].tolist(), self.ins_step[i, :n].tolist(),
                                                 self.um_step[i, :n].tolist())

    def keep(self, rows: Tensor) -> None:
        self.x, self.ins_step, self.um_step = self.x[rows], self.ins_step[rows], self.um_step[rows]
        self.alive, self.open_from = self.alive[rows], self.open_from[rows]


class TauLeapingSampler:
    """The sampler of the module docstring, its parts swappable: the time grid (:class:`UniformGrid`,
    :class:`UnmaskGrid`), the insertion draw (:data:`INSERTION_DRAW`) and the slot selector
    (:class:`SlotSelector`), chosen from ``options`` unless given. :meth:`run` is the loop over the grid;
    :meth:`step` is one update: one model evaluation, the unmasking events, the insertions, and the
    finished sequences leaving the batch."""

    def __init__(self, predict: Predictor, integrated_hazard: Callable[[Tensor, Tensor], Tensor],
                 options: SamplerOptions, banned_tokens: list[int], pad_id: int, mask_id: int,
                 insertion_unit: float = 1.0, unmask_cdf: Callable[[Tensor], Tensor] | None = None,
                 grid=None, draw=None, selector: SlotSelector | None = None):
        self.options = TauLeapingOptions.of(options)
        self.predict, self.integrated_hazard = predict, integrated_hazard
        self.banned_tokens, self.pad_id, self.mask_id = banned_tokens, pad_id, mask_id
        self.insertion_unit = insertion_unit
        self.two_phase = self.options.order == "insert_first"
        self.insert_steps = self.options.steps // 2 if self.two_phase else self.options.steps
        self.grid = grid or make_grid(self.options.grid, unmask_cdf)
        self.draw = draw or INSERTION_DRAW[self.options.insertion_draw]
        self.selector = selector or SlotSelector(self.options.confidence or ("top_prob" if self.two_phase else None))
        self.banned: Tensor | None = None

    @torch.no_grad()
    def run(self, tokens: Tensor, fixed: Tensor, generator: torch.Generator | None = None,
            open_from: Tensor | None = None) -> SampleOutput:
        """Sample from canvases ``tokens`` (B, W_buf) with ``fixed`` (B, W_buf): gap k (left of position k)
        may receive insertions iff ``k >= open_from[b]`` (default: the length of the row's leading run of
        fixed positions, i.e. prompt and BOS); positions before ``open_from`` never move."""
        device = tokens.device
        B = tokens.shape[0]
        if open_from is None:
            open_from = fixed.long().cumprod(dim=1).sum(1)
        x = tokens.clone()
        batch = _Batch(x, torch.full_like(x, -1), torch.full_like(x, -1), torch.arange(B, device=device),
                       open_from.to(device), torch.zeros(B, dtype=torch.long, device=device), [None] * B)
        times = self.grid.times(self.insert_steps, device)
        for step in range(self.options.steps + 1):
            if batch.alive.numel() == 0 or self.step(batch, step, times, generator):
                break
        rows = batch.out_rows
        return SampleOutput(tokens=[r[0] for r in rows], insert_step=[r[1] for r in rows],
                            unmask_step=[r[2] for r in rows], model_evals=batch.evals.tolist(),
                            forward_calls=batch.forward_calls)

    def step(self, batch: _Batch, step: int, times: Tensor, generator: torch.Generator | None) -> bool:
        """One update of ``batch`` at ``step`` on the grid ``times``; True when sampling is over (the fill
        after the last step)."""
        options, pad_id, mask_id = self.options, self.pad_id, self.mask_id
        x, device = batch.x, batch.x.device
        buffer_len = x.shape[1]
        lengths = (x != pad_id).sum(1)
        width = int(lengths.max())
        xs = x[:, :width]
        inserting = step < self.insert_steps
        t_now = times[min(step, self.insert_steps)] if (inserting or not self.two_phase) \
            else times.new_tensor(options.unmask_time)
        logits, g, b_um = self.predict(xs, t_now.expand(batch.alive.numel()))
        batch.forward_calls += 1
        batch.evals[batch.alive] += 1
        if self.banned is None:
            self.banned = torch.zeros(logits.shape[-1], dtype=torch.bool, device=device)
            self.banned[self.banned_tokens] = True
        banned = self.banned
        masked = xs == mask_id

        if step == options.steps:  # after the grid: fill what is left by argmax
            fill = logits.float().masked_fill(banned, float("-inf")).argmax(-1)
            x[:, :width] = torch.where(masked, fill, xs)
            batch.um_step[:, :width] = torch.where(masked, torch.full_like(xs, step), batch.um_step[:, :width])
            batch.finish(torch.arange(batch.alive.numel(), device=device), pad_id)
            return True

        fire = self._unmasking_events(step, inserting, times, b_um, masked, logits, banned, generator)
        if bool(fire.any()):
            xs = xs.clone()
            xs[fire] = sample_from_logits(logits[fire], generator=generator, banned=banned,
                                          temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
            x[:, :width] = xs
            batch.um_step[:, :width] = torch.where(fire, torch.full_like(xs, step), batch.um_step[:, :width])

        # --- insertion (gap k is left of slot k; never inside the prompt prefix or left of BOS) ---
        cols = torch.arange(width, device=device)[None]
        gap_ok = (cols < lengths[:, None]) & (cols >= batch.open_from[:, None])
        g = torch.where(gap_ok, g.float(), torch.zeros_like(g, dtype=torch.float32))
        inserted = torch.zeros_like(lengths)
        if inserting:
            p_ins = -torch.expm1(-self.insertion_unit * self.integrated_hazard(times[step], times[step + 1]))
            counts = _insertion_counts(g / self.insertion_unit, p_ins, lengths, buffer_len, generator, self.draw)
            inserted = counts.sum(1)
            if bool(inserted.any()):
                batch.x, batch.ins_step, batch.um_step = _insert_new_masks(
                    counts, lengths, inserted, x, batch.ins_step, batch.um_step, step, mask_id, pad_id)

        # --- finished sequences leave the batch ---
        done = (batch.x == mask_id).sum(1) == 0
        if inserting:
            done &= (g.sum(1) / self.insertion_unit < options.stop_threshold) & (inserted == 0)
        if bool(done.any()):
            batch.finish(done.nonzero().squeeze(1), pad_id)
            batch.keep(~done)
        return False

    def _unmasking_events(self, step: int, inserting: bool, times: Tensor, b_um: Tensor | None, masked: Tensor,
                          logits: Tensor, banned: Tensor, generator) -> Tensor:
        """The masked slots (b, w) unmasked at ``step``: joint order, each with probability
        ``1 - exp(-b_um dLam)``; insert_first, none while inserting, then ``ceil(#masked / steps left)`` per
        row; chosen by the slot selector."""
        if not self.two_phase:
            rate = self.integrated_hazard(times[step], times[step + 1])
            rate = rate if b_um is None else b_um.float() * rate
            return self.selector.choose(masked, logits, banned,
                                        -torch.expm1(-rate) * torch.ones_like(masked, dtype=torch.float32), None,
                                        generator)
        if not inserting:
            steps_left = self.options.steps - step
            n_fire = (masked.sum(1, keepdim=True) + steps_left - 1) // steps_left
            return self.selector.choose(masked, logits, banned, None, n_fire, generator)
        return torch.zeros_like(masked)


def tau_leaping_sample(
    predict: Predictor,
    integrated_hazard: Callable[[Tensor, Tensor], Tensor],
    tokens: Tensor,
    fixed: Tensor,
    banned_tokens: list[int],
    pad_id: int,
    mask_id: int,
    options: SamplerOptions,
    generator: torch.Generator | None = None,
    insertion_unit: float = 1.0,
    open_from: Tensor | None = None,
    unmask_cdf: Callable[[Tensor], Tensor] | None = None,
) -> SampleOutput:
    """:meth:`TauLeapingSampler.run` of a sampler built from these arguments (``options`` read as
    :class:`TauLeapingOptions`, the defaults for the fields they lack; ``unmask_cdf``: the schedule's
    unmasking-time CDF for the ``unmask`` grid, default the linear one)."""
    sampler = TauLeapingSampler(predict, integrated_hazard, options, banned_tokens, pad_id, mask_id,
                                insertion_unit=insertion_unit, unmask_cdf=unmask_cdf)
    return sampler.run(tokens, fixed, generator, open_from)
