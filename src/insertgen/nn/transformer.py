"""One Transformer trunk for every model: bidirectional or causal, RoPE, SDPA, optional adaLN.

Block (pre-norm, DiT-style adaLN when time-conditioned, c = conditioning vector):

    shift1, scale1, gate1, shift2, scale2, gate2 = W_mod c          (W_mod zero-initialised)
    h = h + (1 + gate1) * Attn(LN(h) * (1 + scale1) + shift1)      # gate is added to 1 so that
    h = h + (1 + gate2) * MLP(LN(h) * (1 + scale2) + shift2)       # zero init == unconditioned block

    residual_gate="zero" (DiT's adaLN-Zero, as the reference DDiT): h = h + gate * Attn(...), likewise
    for the MLP, so that every block starts as the identity and opens as its gate learns.

Input: ``x_i = E[t_i]``, plus three options (all zero-initialised, so a fresh model is the plain one):

    token_shift:         + P[t_(i-1)]     the previous position's token (a row of its own, "none", when
                                          that position is padding or there is none; after a key/value
                                          cache's end, the cached last token), so that one attention hop
                                          can read an edge pair (u, v) at v's position ("smeared keys")
    absolute_positions:  + A[i]           a learned embedding of the index among real tokens
    position_period=p:   + R[i mod p]     a learned embedding of that index modulo p: the place within
                                          a record of p tokens (p = 2 tells the first node of an edge
                                          pair from the second, which rotary positions hardly can)

Without time conditioning the modulation terms are absent. Attention uses rotary position embeddings
on q and k with positions ``cumsum(mask) - 1`` (the index among non-PAD tokens), and
``scaled_dot_product_attention`` with a key-padding mask (and a causal mask in causal mode). Every
query of a causal trunk may always attend to itself, so rows of padding queries (left padding) are
never empty (no NaN); real queries are unaffected. Causal models decode incrementally with a
:class:`~insertgen.nn.kv_cache.KVCache`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from insertgen.nn.kv_cache import KVCache

RESIDUAL_GATES = ("one_plus", "zero")


@dataclass
class TransformerConfig:
    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    causal: bool = False
    time_conditioning: bool = True
    d_cond: int = 128
    max_len: int = 512
    rope_base: float = 10000.0
    token_shift: bool = False
    absolute_positions: bool = False
    position_period: int = 0
    residual_gate: str = "one_plus"  # time-conditioned blocks: "one_plus" (1 + gate) or "zero" (gate, adaLN-Zero)

    def __post_init__(self):
        if self.residual_gate not in RESIDUAL_GATES:
            raise ValueError(f"residual_gate must be one of {', '.join(RESIDUAL_GATES)}, not {self.residual_gate!r}")
        if self.residual_gate != "one_plus" and not self.time_conditioning:
            raise ValueError(f"residual_gate={self.residual_gate!r} needs a time-conditioned trunk (its gate is "
                             f"computed from the time)")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal_embedding(t: Tensor, dim: int = 256, max_period: float = 1e4) -> Tensor:
    """[cos(t w_j), sin(t w_j)] with w_j = max_period^(-j / (dim/2)); t: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None] * 1000.0  # t in [0, 1]: scale so low frequencies still move
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimeEmbedding(nn.Module):
    """t (B,) -> c (B, d_cond): sinusoidal features -> Linear -> SiLU -> Linear -> SiLU."""

    def __init__(self, d_cond: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, d_cond), nn.SiLU(), nn.Linear(d_cond, d_cond))

    def forward(self, t: Tensor) -> Tensor:
        return F.silu(self.mlp(sinusoidal_embedding(t, self.freq_dim)))


class Rotary(nn.Module):
    """Rotary embedding: rotate the pairs (x_i, x_{i + d/2}) (the two halves of a head) of q and k by the
    angle pos * base^(-2i/d)."""

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions (B, L) -> cos, sin of shape (B, 1, L, head_dim/2)."""
        angles = positions.float()[..., None] * self.inv_freq  # (B, L, D/2)
        return angles.cos()[:, None], angles.sin()[:, None]

    @staticmethod
    def apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x (B, H, L, D) rotated; the two halves of the last dim are the rotated pairs."""
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.causal = cfg.causal
        self.dropout = cfg.dropout
        self.norm1 = nn.LayerNorm(d, bias=False)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.norm2 = nn.LayerNorm(d, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(approximate="tanh"), nn.Linear(cfg.mlp_ratio * d, d)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.modulation = None
        self.gate_offset = 1.0 if cfg.residual_gate == "one_plus" else 0.0
        if cfg.time_conditioning:
            self.modulation = nn.Linear(cfg.d_cond, 6 * d)
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def attention(self, x: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None,
                  cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, L, d = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = Rotary.apply(qkv[:2], cos, sin)  # q and k rotated together: (B, H, L, Dh) each
        v = qkv[2]
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and attn_mask is None,
        )
        return self.proj(y.transpose(1, 2).reshape(B, L, d))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None, cond: Tensor | None,
                cache: KVCache | None = None, layer: int = 0):
        if self.modulation is None or cond is None:
            x = x + self.drop(self.attention(self.norm1(x), cos, sin, attn_mask, cache, layer))
            return x + self.drop(self.mlp(self.norm2(x)))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        x = x + (self.gate_offset + gate1) * self.drop(self.attention(h, cos, sin, attn_mask, cache, layer))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + (self.gate_offset + gate2) * self.drop(self.mlp(h))


class Transformer(nn.Module):
    """Token ids (B, L) [+ time t (B,)] -> hidden states (B, L, d_model) and the conditioning vector.

    ``pad_mask`` (B, L) is True at real tokens. Padding keys are masked out of attention; the hidden
    states at padding positions are computed but meaningless.
    """

    thread_governed = True  # an adaptive thread count ticks before each evaluation (core.threads.govern)

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        # zero tables, made without drawing random numbers: a fresh model with these options computes what
        # the plain model of the same seed computes
        self.previous = (nn.Embedding(cfg.vocab_size + 1, cfg.d_model, _weight=torch.zeros(cfg.vocab_size + 1,
                                                                                          cfg.d_model))
                         if cfg.token_shift else None)  # row vocab_size: "no previous token"
        self.position = (nn.Embedding(cfg.max_len, cfg.d_model, _weight=torch.zeros(cfg.max_len, cfg.d_model))
                         if cfg.absolute_positions else None)
        self.phase = (nn.Embedding(cfg.position_period, cfg.d_model,
                                   _weight=torch.zeros(cfg.position_period, cfg.d_model))
                      if cfg.position_period else None)
        self.time = TimeEmbedding(cfg.d_cond) if cfg.time_conditioning else None
        self.rotary = Rotary(cfg.d_model // cfg.n_heads, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, bias=False)

    def forward(self, tokens: Tensor, pad_mask: Tensor, t: Tensor | None = None,
                cache: KVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """With ``cache`` (causal trunks only) ``tokens`` are the next positions after the cached ones:
        their rotary positions continue the cached count of real tokens, and the cache is extended."""
        B, L = tokens.shape
        if cache is not None and not self.cfg.causal:
            raise ValueError("a key/value cache needs a causal trunk")
        past = 0 if cache is None else cache.length
        positions = (pad_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, L)
        if past:
            positions = positions + cache.real_positions()
        cos, sin = self.rotary.cos_sin(positions)
        key_mask = pad_mask if cache is None else cache.extend_mask(pad_mask)  # (B, past + L)
        if self.cfg.causal:  # (B, 1, L, past + L): earlier real keys, and always the query itself
            query = torch.arange(L, device=tokens.device)[:, None] + past
            key = torch.arange(past + L, device=tokens.device)[None, :]
            attn_mask = ((key <= query)[None, None] & key_mask[:, None, None, :]) | (key == query)[None, None]
        else:  # (B, 1, 1, L): attend to real keys only
            attn_mask = key_mask[:, None, None, :]
        cond = self.time(t) if (self.time is not None and t is not None) else None
        x = self.embed(tokens)
        if self.previous is not None:
            none = torch.full_like(tokens[:, :1], self.cfg.vocab_size)
            first = none if cache is None or cache.last_tokens is None else cache.last_tokens
            before = torch.cat([first, tokens[:, :-1]], dim=1)
            real_before = torch.cat([torch.ones_like(pad_mask[:, :1]), pad_mask[:, :-1]], dim=1)
            before = torch.where(real_before, before, self.cfg.vocab_size)  # after padding: no previous token
            x = x + self.previous(before)
            if cache is not None:
                cache.last_tokens = torch.where(pad_mask[:, -1:], tokens[:, -1:], self.cfg.vocab_size)
        if self.position is not None:
            x = x + self.position(positions.clamp_max(self.cfg.max_len - 1))
        if self.phase is not None:
            x = x + self.phase(positions % self.cfg.position_period)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, attn_mask, cond, cache, layer)
        return self.norm(x), cond
