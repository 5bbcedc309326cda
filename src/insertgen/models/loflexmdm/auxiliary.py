"""The auxiliary (target-order) network of LoFlexMDM (docs/methods/loflexmdm.md#auxiliary-network).

It reads the CLEAN sequence ``x_1`` and gives each position i two positive rates of its Kumaraswamy
schedules, ``b_in^phi_i`` (insertion) and ``b_um^phi_i`` (unmasking), through :class:`RateHead`
(``min_rate + (max_rate - min_rate) softplus(.)`` or ``min_rate + exp(.)``). A larger ``b`` means an
earlier event; the relative sizes across positions define the generation order. It is used only in
training: sampling needs the generator alone.

Two layouts:

- separate trunk (default): its own Transformer (by default smaller than the generator's);
- shared trunk: the generator's trunk is run a second time, on ``x_1``, and only the heads are separate
  (docs/methods/loflexmdm.md#auxiliary-network; clearly worse on hard star graphs in the paper).

Time conditioning: the closed-form state probabilities assume that ``b`` does not depend on t for a
given ``x_1`` (docs/methods/loflexmdm.md#auxiliary-network), so by default the network does not see t
(a separate trunk has no time input; a shared trunk is fed the constant t = 1). ``use_time=True`` feeds
the sampled t, as the reference code does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from insertgen.nn.heads import RateHead
from insertgen.nn.transformer import Transformer, TransformerConfig


class AuxiliaryNetwork(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, mlp_ratio: int, d_cond: int,
                 max_len: int, use_time: bool, min_rate: float, max_rate: float, positive: str,
                 shared_trunk: Transformer | None = None, learn_unmask: bool = False):
        super().__init__()
        self.use_time = use_time
        self.learn_unmask = learn_unmask
        if shared_trunk is None:
            self.trunk = Transformer(TransformerConfig(
                vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, mlp_ratio=mlp_ratio,
                causal=False, time_conditioning=use_time, d_cond=d_cond, max_len=max_len,
            ))
            width, cond_dim = d_model, (d_cond if use_time else None)
        else:
            self.trunk = None
            width, cond_dim = shared_trunk.cfg.d_model, shared_trunk.cfg.d_cond
        self._shared = [shared_trunk]  # a plain list: the shared trunk's parameters belong to the generator
        self.insert_head = RateHead(width, cond_dim, min_rate=min_rate, max_rate=max_rate, positive=positive)
        self.unmask_head = (RateHead(width, cond_dim, min_rate=min_rate, max_rate=max_rate, positive=positive)
                            if learn_unmask else None)

    def forward(self, x1: Tensor, pad_mask: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, L) clean tokens -> b_in (B, L) and b_um (B, L), or None when unmasking is fixed to b = 1."""
        shared = self._shared[0]
        if shared is not None:
            h, cond = shared(x1, pad_mask, t if self.use_time else torch.ones_like(t))
        else:
            h, cond = self.trunk(x1, pad_mask, t if self.use_time else None)
        b_in = self.insert_head(h, cond)
        b_um = self.unmask_head(h, cond) if self.unmask_head is not None else None
        return b_in, b_um
