"""The IP training objective (docs/methods/insertion-process.md#objective).

Rao-Blackwellised step value of a prefix ``sigma_<i`` (the canvas ``x_{sigma<i}``):

    F_i = sum_{j not in sigma<i} q(j | sigma<i) [ log pi(k(j), x_j | x_{sigma<i}) - log q(j | sigma<i) ]   (i <= L)
    F_{L+1} = log pi(TERM | x)          (classifier termination: EOS is the last "token", handled by the sum)

with ``k(j) = #{s in sigma<i : s < j}``. ELBO = (L+1) E_i E_{sigma<i ~ q}[F_i] for i ~ U{1..L+1}. With K
posterior samples sharing i, the RLOO surrogate whose gradient is unbiased for both networks is

    surrogate = (L+1)/K sum_k [ log q(sigma^k_<i) sg(F^k - mean_{k' != k} F^k') + F^k ]

(the pathwise gradient flows through q(j | .) inside F). Its value is not the ELBO; the ELBO estimate is
``(L+1)/K sum_k F^k``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from insertgen.models.ip.permutations import slot_of_remaining
from insertgen.models.ip.policy import PolicyTables
from insertgen.models.ip.posterior import next_index_log_probs


def step_value(tables: PolicyTables, tokens: Tensor, inserted: Tensor, candidates: Tensor, scores: Tensor,
               all_inserted: Tensor, given: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """F_i per row (B,) and the entropy of q(. | sigma<i) (B,).

    ``tokens``, ``inserted``, ``candidates``, ``scores``: (B, L) in the ORIGINAL layout of x_1 (prompt,
    BOS, targets, EOS); the packed decoder input keeps prompt and BOS in place, so slot k of a canvas is
    packed position ``bos + k``. ``all_inserted`` (B,) marks the rows whose next decision is TERM.
    ``given`` (B, L) marks target tokens on the canvas from the start (a prompt inside the target):
    they are not candidates but count in the slot index, ``k(j) = #{s in sigma<i or given : s < j}``."""
    remaining = candidates & ~inserted
    log_q = next_index_log_probs(scores, remaining)  # (B, L), -inf off the remaining set
    slot = slot_of_remaining(inserted if given is None else inserted | given)
    width = tables.location.shape[1]
    pos = (tables.bos[:, None] + slot).clamp(max=width - 1)  # packed position of each j's slot
    loc = tables.location.gather(1, pos)
    tok = tables.token.gather(1, pos.unsqueeze(-1).expand(-1, -1, tables.token.shape[-1]))
    tok = tok.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    q = log_q.exp()
    safe = lambda a: torch.where(remaining, a, torch.zeros_like(a))  # noqa: E731  (no 0 * -inf)
    value = (q * (safe(loc) + safe(tok) - safe(log_q))).sum(-1)
    entropy = -(q * safe(log_q)).sum(-1)
    value = torch.where(all_inserted, tables.term, value)
    return value, entropy


def rloo_surrogate(values: Tensor, prefix_log_q: Tensor, decisions: Tensor, score_function: bool = True) -> Tensor:
    """Per-row surrogate (B,) from K samples: ``values`` and ``prefix_log_q`` are (K, B), ``decisions``
    (B,) = L + 1."""
    K = values.shape[0]
    surrogate = values.sum(0)
    if score_function and K > 1:
        baseline = (values.sum(0, keepdim=True) - values) / (K - 1)  # mean of the other samples
        surrogate = surrogate + (prefix_log_q * (values - baseline).detach()).sum(0)
    return decisions.float() / K * surrogate
