"""The variable-length noising process: clean sequence + event times -> x_t, s_t and gap statistics.

See docs/methods/flexmdm.md#process and docs/methods/flexmdm.md#estimator. For each non-fixed, non-pad
position i of ``x_1`` (aligned space):

    z_t^i = [D]      if t <  T_in^i          (deleted)
            [MASK]   if T_in^i <= t < T_um^i  (masked)
            x_1^i    if t >= T_um^i          (clean)

Fixed positions (prompt, BOS, EOS) and PAD never change. ``x_t`` = the survivors of ``z_t`` in their
original order (a *stable* compaction), ``s_t[k]`` = the index in ``x_1`` of the k-th token of ``x_t``.
Gap k is the run of deleted aligned positions immediately to the LEFT of token k,
``{j : s_t[k-1] < j < s_t[k]}`` with ``s_t[-1] = -1``; because EOS is fixed and never deleted, no gap
after the last token is needed. For per-token values ``v_j`` (a rate, or 1 to count),

    G_k = sum_{j in gap k, z_t^j = [D]} v_j = C[s_t[k]] - C[s_t[k-1]],   C = cumsum(v * deleted)

Everything is vectorised over batch and positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from insertgen.core.tensors import compact

DELETED, MASKED, CLEAN = 0, 1, 2


@dataclass
class NoisyState:
    """One noised batch. Aligned-space tensors are (B, L); variable-length ones are (B, Lt), Lt <= L."""

    state: Tensor  # (B, L) int64 aligned state: DELETED / MASKED / CLEAN (PAD and fixed count as CLEAN)
    deleted: Tensor  # (B, L) bool: aligned positions that are [D] at time t
    x_t: Tensor  # (B, Lt) tokens of the variable-length state, PAD after len(x_t)
    s_t: Tensor  # (B, Lt) original index of each token of x_t (0 on PAD slots)
    valid: Tensor  # (B, Lt) bool: k < len(x_t)
    masked: Tensor  # (B, Lt) bool: x_t^k == MASK
    clean_tokens: Tensor  # (B, Lt) x_1[s_t]: the token each slot of x_t ends as
    gap_count: Tensor  # (B, Lt) float32: number of deleted tokens in the gap left of slot k

    def gap_sums(self, values: Tensor) -> Tensor:
        """G_k = sum of ``values`` (B, L) over the deleted positions of gap k -> (B, Lt), differentiable."""
        return gap_sums(values, self.deleted, self.s_t, self.valid)


def gap_sums(values: Tensor, deleted: Tensor, s_t: Tensor, valid: Tensor) -> Tensor:
    """Sum ``values`` over the deleted aligned positions of each gap (see module docstring)."""
    cum = torch.cumsum(values * deleted.to(values.dtype), dim=-1)  # (B, L)
    at_token = cum.gather(1, s_t)  # C[s_t[k]]                     # (B, Lt)
    before = torch.cat([torch.zeros_like(at_token[:, :1]), at_token[:, :-1]], dim=1)  # C[s_t[k-1]]
    return torch.where(valid, at_token - before, torch.zeros_like(at_token))


def noise(x1: Tensor, fixed: Tensor, t: Tensor, t_in: Tensor, t_um: Tensor, pad_id: int, mask_id: int) -> NoisyState:
    """Build x_t from x_1 (B, L), the fixed mask (B, L), times t (B,) and event times (B, L)."""
    pad = x1 == pad_id
    active = ~fixed & ~pad  # positions that are noised
    t_col = t[:, None]
    deleted = active & (t_col < t_in)
    masked_aligned = active & ~deleted & (t_col < t_um)
    state = torch.full_like(x1, CLEAN)
    state[masked_aligned] = MASKED
    state[deleted] = DELETED

    z = torch.where(masked_aligned, torch.full_like(x1, mask_id), x1)
    s_t, valid = compact(~deleted & ~pad)  # survivors
    x_t = torch.where(valid, z.gather(1, s_t), torch.full_like(s_t, pad_id))
    clean_tokens = torch.where(valid, x1.gather(1, s_t), torch.full_like(s_t, pad_id))
    counts = gap_sums(torch.ones_like(x1, dtype=torch.float32), deleted, s_t, valid)
    return NoisyState(
        state=state, deleted=deleted, x_t=x_t, s_t=s_t, valid=valid, masked=x_t == mask_id,
        clean_tokens=clean_tokens, gap_count=counts,
    )
