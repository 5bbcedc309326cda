"""Plackett-Luce posterior over insertion orders (docs/methods/insertion-process.md#posterior).

With one static score ``s_j`` per target position j (masked positions at -inf),

    q(sigma | x) = prod_t exp(s_{sigma_t}) / sum_{j not in sigma_<t} exp(s_j)
    q(j | sigma_<t) = softmax_{j not in sigma_<t}(s_j)
    log q(sigma_<=m) = sum_{t<m} (s_{sigma_t} - D_t),   D_t = logsumexp(s_{sigma_t}, ..., s_{sigma_L})

(one sort and a reverse log-cumulative-sum-exp). Sampling is Gumbel-top-k: ``sigma = argsort(s + g)``
descending with ``g ~ Gumbel(0, 1)``, an exact sample whose first m entries are an exact prefix draw.
AO-IP is ``s = 0``: uniform permutations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from insertgen.nn.transformer import Transformer, TransformerConfig

NEG_INF = float("-inf")


def masked_scores(scores: Tensor, candidates: Tensor) -> Tensor:
    """Scores (float32) with non-candidate positions at -inf."""
    return torch.where(candidates, scores.float(), torch.full_like(scores, NEG_INF, dtype=torch.float32))


def gumbel_top_k(scores: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Exact Plackett-Luce permutation(s): argsort(scores + Gumbel noise), descending. Positions with
    score -inf come last. (B, L) -> (B, L) long."""
    u = torch.rand(scores.shape, generator=generator, device=scores.device).clamp_(1e-8, 1 - 1e-8)
    return torch.argsort(scores - torch.log(-torch.log(u)), dim=-1, descending=True, stable=True)


def prefix_log_prob(scores: Tensor, sigma: Tensor, m: Tensor) -> Tensor:
    """log q(sigma_<=m) per row: scores (B, L) with -inf outside the candidates, sigma (B, L) a
    permutation with the candidates first, m (B,) prefix lengths (<= number of candidates)."""
    ordered = scores.gather(-1, sigma)  # s_{sigma_t}
    tail = torch.logcumsumexp(ordered.flip(-1), dim=-1).flip(-1)  # D_t
    t = torch.arange(sigma.shape[-1], device=sigma.device)[None, :]
    use = t < m[:, None]
    terms = torch.where(use, ordered - torch.where(use, tail, torch.zeros_like(tail)), torch.zeros_like(ordered))
    return terms.sum(-1)


def next_index_log_probs(scores: Tensor, remaining: Tensor) -> Tensor:
    """log q(j | sigma_<t) over the remaining candidates (B, L); -inf elsewhere."""
    logits = torch.where(remaining, scores, torch.full_like(scores, NEG_INF))
    out = torch.log_softmax(logits, dim=-1)
    return torch.where(remaining, out, torch.full_like(out, NEG_INF))


class PosteriorNetwork(nn.Module):
    """A small bidirectional Transformer over the clean sequence [prompt, BOS, x, EOS] with a bias-free
    linear head: one score per position (the caller masks the non-target ones)."""

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, mlp_ratio: int, max_len: int,
                 dropout: float = 0.0):
        super().__init__()
        self.trunk = Transformer(TransformerConfig(
            vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, mlp_ratio=mlp_ratio,
            dropout=dropout, causal=False, time_conditioning=False, max_len=max_len,
        ))
        self.score = nn.Linear(d_model, 1, bias=False)
        nn.init.zeros_(self.score.weight)  # starts as the uniform order (AO-IP)

    def forward(self, tokens: Tensor, pad_mask: Tensor) -> Tensor:
        h, _ = self.trunk(tokens, pad_mask)
        return self.score(h).squeeze(-1).float()
