"""Token choice from logits: temperature, top-k, top-p (nucleus), greedy; special tokens excluded."""

from __future__ import annotations

import torch
from torch import Tensor


def filter_logits(logits: Tensor, banned: Tensor | None = None, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Logits (..., V) with banned ids, tokens outside the top-k, and tokens outside the top-p nucleus
    (the smallest set of most likely tokens whose cumulative probability reaches p; the top token is
    always kept) set to -inf, divided by the temperature."""
    logits = logits.float()
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    if temperature != 1.0:
        if temperature <= 0:
            raise ValueError("temperature must be positive (use top_k=1 for greedy)")
        logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly more likely tokens
        drop_sorted = before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_from_logits(logits: Tensor, generator: torch.Generator | None = None, **options) -> Tensor:
    """Draw one token per row of ``logits`` (..., V) after :func:`filter_logits` (Gumbel-max)."""
    logits = filter_logits(logits, **options)
    if options.get("top_k") == 1:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-20, 1.0)
    return (logits - torch.log(-torch.log(u))).argmax(-1)


def confidence_scores(probs: Tensor, mode: str) -> Tensor:
    """Per position, how sure the model is of its token: ``top_prob`` = max_v p(v), ``prob_diff`` = the
    gap between the two most likely tokens. ``probs`` (..., V) -> (...)."""
    top2 = torch.topk(probs, 2, dim=-1).values
    return top2[..., 0] if mode == "top_prob" else top2[..., 0] - top2[..., 1]
