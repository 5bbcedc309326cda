"""Tensor helpers shared by the model families."""

from __future__ import annotations

import torch
from torch import Tensor


def compact(keep: Tensor) -> tuple[Tensor, Tensor]:
    """Stable compaction of the kept positions of each row: ``index`` (B, W) holds the original indices
    of the kept positions in their original order (0 on the padding slots), ``valid`` (B, W) marks the
    real slots; W = the largest number kept in a row."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept first, in order
    lengths = keep.sum(dim=1)
    width = int(lengths.max())
    valid = torch.arange(width, device=keep.device)[None, :] < lengths[:, None]
    order = order[:, :width]
    return torch.where(valid, order, torch.zeros_like(order)), valid
