"""Projected discrete-flow-matching loss of variable-length masked diffusion (docs/methods/flexmdm.md#loss).

Rates are matched with the Bregman divergence of ``psi(r) = r log r`` (generalised KL between Poisson
rates), target first:

    D(p, q) = q - p + p (log p - log q)          (both arguments clamped to >= eps)

Per sequence, with target unmasking hazards ``lam_um`` (at masked slots), target gap insertion-rate
sums ``G_k`` and the model's rates ``lam_um_theta``, ``lam_in_theta`` and token posterior ``K_theta``:

    L_um = sum_{k: x_t^k = M} [ -lam_um_k log K_theta(x_1^{s_t[k]} | x_t, k) + D(lam_um_k, lam_um_theta_k) ]
    L_in = sum_{k < len(x_t)} D(G_k, lam_in_theta_k)
    loss = L_um / n_um + L_in / n_in

FlexMDM (docs/methods/flexmdm.md#loss) is the case ``lam_um = lam_um_theta = h(t)`` (so the D
term of L_um vanishes and L_um is the ``h(t)``-weighted cross-entropy), ``G_k = h(t) * #deleted in gap k``,
``lam_in_theta = h(t) * g_theta``; with ``normalisation="buffer"`` both sums are divided by the constant
buffer length ``L_buf`` as in the FlexMDM code. ``normalisation="masked_count"`` divides L_um by
max(1, #masked) and L_in by ``L_buf`` as in the LoFlexMDM code. The batch loss is the mean over sequences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def poisson_bregman(p: Tensor, q: Tensor, eps: float = 1e-6) -> Tensor:
    """D(p, q) = q - p + p (log p - log q), elementwise, arguments clamped to >= eps (float32)."""
    p = p.float().clamp_min(eps)
    q = q.float().clamp_min(eps)
    return q - p + p * (torch.log(p) - torch.log(q))


def rate_matching_loss(
    logits: Tensor,  # (B, Lt, V) token logits of the model on x_t
    clean_tokens: Tensor,  # (B, Lt) x_1[s_t]
    masked: Tensor,  # (B, Lt) bool
    valid: Tensor,  # (B, Lt) bool: k < len(x_t)
    unmask_rate_target: Tensor,  # (B, Lt) lam_um at each slot (used where masked)
    unmask_rate_model: Tensor,  # (B, Lt) lam_um_theta
    insert_rate_target: Tensor,  # (B, Lt) G_k
    insert_rate_model: Tensor,  # (B, Lt) lam_in_theta
    norm_length: float,
    normalisation: str = "buffer",
    eps: float = 1e-6,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-sequence loss (B,) and its parts (each (B,)); see the module docstring."""
    log_k = F.log_softmax(logits.float(), dim=-1)
    log_k_true = log_k.gather(-1, clean_tokens.unsqueeze(-1)).squeeze(-1)  # (B, Lt)
    m = masked.float()
    cross_entropy = (-unmask_rate_target * log_k_true * m).sum(-1)
    unmask_bregman = (poisson_bregman(unmask_rate_target, unmask_rate_model, eps) * m).sum(-1)
    insert = (poisson_bregman(insert_rate_target, insert_rate_model, eps) * valid.float()).sum(-1)
    if normalisation == "buffer":
        n_um = torch.full_like(insert, float(norm_length))
    elif normalisation == "masked_count":
        n_um = m.sum(-1).clamp_min(1.0)
    elif normalisation == "none":  # the plain sums: the ELBO's integrand (models/flexmdm/elbo.py)
        n_um, norm_length = torch.ones_like(insert), 1.0
    else:
        raise ValueError(f"normalisation must be 'buffer', 'masked_count' or 'none', not {normalisation!r}")
    unmask_loss = (cross_entropy + unmask_bregman) / n_um
    insert_loss = insert / float(norm_length)
    parts = {"unmask": unmask_loss, "insert": insert_loss, "cross_entropy": cross_entropy / n_um}
    return unmask_loss + insert_loss, parts
