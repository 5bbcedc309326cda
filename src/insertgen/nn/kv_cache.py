"""Key/value cache for causal decoding: each new token costs one position, not a re-encoding.

For every layer the cache holds the rotated keys and the values of all positions seen so far,
``(B, H, T, Dh)``, and ``key_mask`` (B, T) marks the real (non-padding) ones. A decoding step appends the
new positions' keys and values, so attention of a new query over ``[past, new]`` equals the attention
of the same query in a full causal pass over the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class KVCache:
    keys: list[Tensor | None] = field(default_factory=list)
    values: list[Tensor | None] = field(default_factory=list)
    key_mask: Tensor | None = None  # (B, T) True at real positions
    last_tokens: Tensor | None = None  # (B, 1) the token at the last cached position (a trunk's token_shift)

    @classmethod
    def empty(cls, n_layers: int) -> "KVCache":
        return cls(keys=[None] * n_layers, values=[None] * n_layers)

    @property
    def length(self) -> int:
        """T, the number of cached positions (padding included)."""
        return 0 if self.key_mask is None else self.key_mask.shape[1]

    def real_positions(self) -> Tensor | None:
        """(B, 1) count of real cached positions = the rotary position of the next real token."""
        return None if self.key_mask is None else self.key_mask.long().sum(1, keepdim=True)

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this layer's new keys / values and return the full ones."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def extend_mask(self, pad_mask: Tensor) -> Tensor:
        """Append the new positions' padding mask; returns the full (B, T + n) key mask."""
        self.key_mask = pad_mask if self.key_mask is None else torch.cat([self.key_mask, pad_mask], dim=1)
        return self.key_mask

    def select(self, rows: Tensor) -> "KVCache":
        """The cache of the sequences ``rows`` only (finished sequences leave the batch)."""
        pick = lambda x: None if x is None else x.index_select(0, rows)  # noqa: E731
        return KVCache([pick(k) for k in self.keys], [pick(v) for v in self.values], pick(self.key_mask),
                       pick(self.last_tokens))
