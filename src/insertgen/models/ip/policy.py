"""The insertion policy pi_theta(a | y, c) of the Insertion Process (docs/methods/insertion-process.md#policy).

The decoder reads ``[prompt..., BOS, y_1..y_n, EOS]`` bidirectionally (RoPE on the packed index, so
positions shift as tokens are inserted). Slot k (0-based, k = 0..n) is represented by the hidden state
of the token to its left: BOS for slot 0, ``y_k`` for slot k >= 1; TERM by the EOS sentinel. A shared
bias-free location head gives ``l_k``; a token head gives the content logits. Then

    policy termination:      p(k | y) = softmax(l_0, ..., l_n, l_TERM),   pi(k, v | y) = p(k | y) p(v | k, y)
    classifier termination:  p(k | y) = softmax(l_0, ..., l_n),           stop = EOS emitted in slot n

with ``p(v | k, y) = softmax(W_tok h_k)`` over the data tokens (PAD, MASK and BOS never; EOS only in
the last slot and only with classifier termination, in training and sampling alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from insertgen.nn.transformer import Transformer, TransformerConfig

NEG_INF = float("-inf")


@dataclass
class PolicyTables:
    """Log-probabilities of one batch of canvases, indexed by packed position (B, W) / (B, W, V).

    ``location[b, bos[b] + k]`` = log p(slot k), k = 0..n[b]; ``term[b]`` = log p(TERM) (-inf with
    classifier termination); ``token[b, bos[b] + k, v]`` = log p(v | slot k)."""

    location: Tensor
    term: Tensor
    token: Tensor
    bos: Tensor
    n: Tensor


class InsertionPolicy(nn.Module):
    def __init__(self, vocab_size: int, special_ids: dict[str, int], d_model: int, n_layers: int, n_heads: int,
                 mlp_ratio: int, dropout: float, max_len: int, termination: str, **input_options):
        super().__init__()
        if termination not in ("policy", "classifier"):
            raise ValueError(f"termination must be 'policy' or 'classifier', not {termination!r}")
        self.termination = termination
        self.ids = special_ids
        self.trunk = Transformer(TransformerConfig(
            vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, mlp_ratio=mlp_ratio,
            dropout=dropout, causal=False, time_conditioning=False, max_len=max_len, **input_options,
        ))
        self.location = nn.Linear(d_model, 1, bias=False)
        self.token = nn.Linear(d_model, vocab_size, bias=False)
        nn.init.zeros_(self.location.weight)
        nn.init.zeros_(self.token.weight)
        banned = torch.zeros(vocab_size, dtype=torch.bool)
        banned[[special_ids["pad"], special_ids["mask"], special_ids["bos"], special_ids["eos"]]] = True
        self.register_buffer("banned", banned, persistent=False)

    def forward(self, tokens: Tensor) -> PolicyTables:
        """``tokens`` (B, W): packed rows ``[prompt, BOS, canvas, EOS, PAD...]``."""
        pad_mask = tokens != self.ids["pad"]
        h, _ = self.trunk(tokens, pad_mask)
        loc = self.location(h).squeeze(-1).float()  # (B, W)
        W = tokens.shape[1]
        pos = torch.arange(W, device=tokens.device)[None, :]
        bos = (tokens == self.ids["bos"]).float().argmax(1)
        eos = (tokens == self.ids["eos"]).float().argmax(1)
        n = eos - bos - 1
        is_slot = (pos >= bos[:, None]) & (pos < eos[:, None])
        allowed = is_slot | ((pos == eos[:, None]) & (self.termination == "policy"))
        loc_logp = torch.log_softmax(torch.where(allowed, loc, torch.full_like(loc, NEG_INF)), dim=-1)
        location = torch.where(is_slot, loc_logp, torch.full_like(loc_logp, NEG_INF))
        if self.termination == "policy":
            term = loc_logp.gather(1, eos[:, None]).squeeze(1)
        else:
            term = torch.full_like(loc_logp[:, 0], NEG_INF)
        raw = self.token(h).float()  # (B, W, V)
        logits = raw.masked_fill(self.banned, NEG_INF)
        if self.termination == "classifier":  # EOS allowed in the last slot only
            last = pos == (eos - 1)[:, None]  # the token left of the sentinel stands for slot n
            eos_logit = raw[..., self.ids["eos"]]
            logits[..., self.ids["eos"]] = torch.where(last, eos_logit, torch.full_like(eos_logit, NEG_INF))
        token = torch.log_softmax(logits, dim=-1)
        return PolicyTables(location=location, term=term, token=token, bos=bos, n=n)


def pack_canvases(prompts: list[list[int]], canvases: list[list[int]], bos_id: int, eos_id: int, pad_id: int,
                  device=None) -> Tensor:
    """Rows ``[prompt, BOS, canvas, EOS]`` right-padded with PAD -> (B, W) long."""
    rows = [list(p) + [bos_id] + list(c) + [eos_id] for p, c in zip(prompts, canvases)]
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out.to(device)
