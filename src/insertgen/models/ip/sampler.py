"""Ancestral sampling of the Insertion Process: one insertion (a slot, then a token) per policy evaluation,
until the policy stops (docs/methods/insertion-process.md#policy)."""

from __future__ import annotations

import torch
from torch import Tensor

from insertgen.core.generation import Requests
from insertgen.core.sampling import (
    SamplerOptions,
    confidence_scores,
    sample_from_logits,
)
from insertgen.models.ip.policy import pack_canvases

CONFIDENT_SLOT_FLOOR = 0.1  # confidence-chosen slots: candidates have p(k) >= this x the likeliest slot's


@torch.no_grad()
def ancestral_sample(model, prompts: list[list[int]], options: SamplerOptions | None = None,
           generator: torch.Generator | None = None, return_trajectory: bool = False,
           prompt_in_target: bool = False):
    """Ancestral insertion: location (or TERM), then token, one insertion per model evaluation, with
    temperature / top-k / top-p / greedy applied to both choices (``options.confidence`` moves each
    insertion to the plausible slot with the surest token: :func:`most_confident_slot`). A sequence stops at
    TERM (or EOS in the last slot) or when its canvas reaches the length cap ``max_len - len(prompt) - 2``
    (counted as not terminated); finished sequences leave the batch. With ``prompt_in_target`` the
    canvas starts as the prompt (``[BOS, prompt, EOS]``), insertions go anywhere in it, and the
    output is the whole canvas (core/generation.py)."""
    options = SamplerOptions.of(options)
    v = model.vocab
    device = next(model.parameters()).device
    B = len(prompts)
    requests = Requests.of(prompts, v, model.config.max_len, prompt_in_target)
    prompts, caps = requests.context, requests.cap
    canvases = [list(s) for s in requests.start]
    steps = [[-1] * len(s) for s in requests.start]
    terminated = [False] * B
    evals = [0] * B
    alive = [i for i in range(B) if len(canvases[i]) < caps[i]]  # a prompt that fills the buffer: no insertion
    forward_calls = step = 0
    choose = dict(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
    while alive:
        packed = pack_canvases([prompts[i] for i in alive], [canvases[i] for i in alive], v.bos_id, v.eos_id,
                               v.pad_id, device)
        tables = model.policy(packed)
        forward_calls += 1
        n, bos = tables.n, tables.bos
        width = int(n.max()) + 2
        cols = torch.arange(width, device=device)[None, :]
        loc = tables.location.gather(1, (bos[:, None] + cols).clamp(max=packed.shape[1] - 1))
        loc = torch.where(cols <= n[:, None], loc, torch.full_like(loc, float("-inf")))
        if model.termination == "policy":
            loc = torch.where(cols == (n + 1)[:, None], tables.term[:, None], loc)
        slot = sample_from_logits(loc, generator, **choose)
        if options.confidence is not None:
            slot = most_confident_slot(model, tables, slot, cols, options.confidence, loc)
        token_rows = tables.token[torch.arange(len(alive), device=device), (bos + slot).clamp(max=packed.shape[1] - 1)]
        token = sample_from_logits(token_rows, generator, **choose)
        still = []
        for r, i in enumerate(alive):
            evals[i] += 1
            k, tok = int(slot[r]), int(token[r])
            if k == int(n[r]) + 1 or tok == v.eos_id:  # TERM, or EOS in the last slot
                terminated[i] = True
                continue
            canvases[i].insert(k, tok)
            steps[i].insert(k, step)
            if len(canvases[i]) < caps[i]:
                still.append(i)
        alive = still
        step += 1
    return requests.result(canvases, return_trajectory, insert_step=steps, model_evals=evals,
                           forward_calls=forward_calls, terminated=terminated)


def most_confident_slot(model, tables, slot: Tensor, cols: Tensor, mode: str, loc_logits: Tensor) -> Tensor:
    """Confidence-chosen insertion (``SamplerOptions.confidence``): the policy still decides whether to
    stop (a sampled TERM stays TERM), but an insertion goes to the slot whose token distribution is the
    most certain, ``argmax_k conf(p(. | k, y))`` with ``conf`` = top_prob or prob_diff, among the slots
    the location policy finds plausible, ``p(k | y) >= CONFIDENT_SLOT_FLOOR * max_j p(j | y)`` (a slot
    where nothing is missing is never chosen in training, so its token head is untrained and may be
    confidently wrong). The token is then drawn there as usual. This is adaptive-order decoding: a
    decoder trained on many orders fills first the places it can already read off."""
    n, bos = tables.n, tables.bos
    index = (bos[:, None] + cols).clamp(max=tables.token.shape[1] - 1)
    rows = tables.token.gather(1, index[..., None].expand(-1, -1, tables.token.shape[-1]))
    score = confidence_scores(rows.exp(), mode)
    insertion = cols <= n[:, None]  # slots 0..n (not TERM, not past the canvas)
    slot_p = torch.softmax(loc_logits.where(insertion, torch.full_like(loc_logits, float("-inf"))), 1)
    plausible = insertion & (slot_p >= CONFIDENT_SLOT_FLOOR * slot_p.max(1, keepdim=True).values)
    score = torch.where(plausible, score, torch.full_like(score, float("-inf")))
    stop = slot == n + 1 if model.termination == "policy" else torch.zeros_like(slot, dtype=torch.bool)
    return torch.where(stop, slot, score.argmax(1))
