"""The ELBO of FlexMDM and LoFlexMDM (docs/methods/flexmdm.md#elbo).

The model generates by a continuous-time Markov chain on sequences (insert a mask into a gap, unmask a
mask) from the empty target at t = 0 to t = 1. The noising process of a target x_1 (its event times; per-token
rates ``b_j h(t)`` for LoFlexMDM's schedules, ``h(t) = 1 / (1 - t)`` for FlexMDM's linear one) is a chain Q
that ends at x_1 surely, so ``log p(x_1) >= -KL(Q || P_theta)`` over paths, and the KL of two chains is the
time integral of the generalised KL between their jump rates (D of models/flexmdm/loss.py):

    log p(x_1) >= ELBO = - int_0^1 E_{z_t ~ Q_t} [ l(t, z_t) ] dt
    l(t, z_t) = sum_{masked slots k} ( -lam_um_k log K_theta(x_1^{s_t[k]} | x_t, k) + D(lam_um_k, lam_um_theta_k) )
              + sum_{open gaps k} D(G_k, h(t) g_theta(k))

with ``G_k = h(t) sum_{j missing in gap k} b_in_j`` (the gap's count for FlexMDM), ``lam_um = h(t) b_um``
and the model's ``lam_um_theta = h(t) b_um_theta`` (both ``h(t)`` unless the unmasking rates are learned).
Masks are indistinguishable, so a jump "one more mask in gap k" is one transition whichever missing token
it stands for; splitting the model's gap rate among them in Q's proportions gives the same sum, which is
why the bound holds on the projected chain the network sees. Only the gaps where the sampler may insert
count (after BOS, right of the prompt); elsewhere the model's rate is 0, as in sampling.

It is the training loss with the hazard weighting and no normalisation, estimated by Monte Carlo: M
times ``t_m`` stratified on (0, 1), one noised state each; the estimate is ``-mean_m l(t_m, z_m)`` and its
standard error ``std / sqrt(M)``. ``schedule="uniform"`` scores a LoFlexMDM under every ``b = 1`` (the linear
schedule of FlexMDM) instead of its learned one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from insertgen.core.data import Example, collate
from insertgen.core.errors import InsertgenError
from insertgen.core.estimates import Estimate
from insertgen.models.flexmdm.loss import rate_matching_loss
from insertgen.models.flexmdm.process import noise
from insertgen.models.schedules import stratified_times

SCHEDULES = ("learned", "uniform")


def elbo_integrand(model, x1: Tensor, fixed: Tensor, t: Tensor, t_in: Tensor, t_um: Tensor,
                   b_in: Tensor | None = None, b_um: Tensor | None = None) -> Tensor:
    """``l(t, z_t)`` per row (B,) of the noised state given by the event times (module docstring)."""
    parts = elbo_integrand_parts(model, x1, fixed, t, t_in, t_um, b_in, b_um)
    return parts["unmask"] + parts["insert"]


def elbo_integrand_parts(model, x1: Tensor, fixed: Tensor, t: Tensor, t_in: Tensor, t_um: Tensor,
                         b_in: Tensor | None = None, b_um: Tensor | None = None) -> dict[str, Tensor]:
    """The two sums of ``l(t, z_t)`` per row (B,): ``unmask`` (the masked slots' terms) and ``insert`` (the
    open gaps'), with ``cross_entropy``, the unmask part's log-loss alone."""
    st = noise(x1, fixed, t, t_in, t_um, model.vocab.pad_id, model.vocab.mask_id)
    logits, g, b_um_model = model.generator_rates(st.x_t, t)
    h = model.schedule.hazard(t)[:, None].expand(g.shape)
    open_from = (x1 == model.vocab.bos_id).long().argmax(1) + 1  # no insertion left of BOS (as in sampling)
    open_gap = st.valid & (torch.arange(g.shape[1], device=g.device)[None] >= open_from[:, None])
    _, parts = rate_matching_loss(
        logits, st.clean_tokens, st.masked, open_gap,
        unmask_rate_target=h if b_um is None else h * b_um.float().gather(1, st.s_t),
        unmask_rate_model=h if b_um_model is None else h * b_um_model,
        insert_rate_target=h * (st.gap_count if b_in is None else st.gap_sums(b_in)),
        insert_rate_model=h * g, norm_length=1.0, normalisation="none",
    )
    return parts


@torch.no_grad()
def elbo(model, prompt: list[int], target: list[int], samples: int, generator: torch.Generator,
         schedule: str = "learned") -> Estimate:
    """The ELBO of ``target`` given ``prompt`` (module docstring), from ``samples`` draws of (t, z_t)."""
    if schedule not in SCHEDULES:
        raise InsertgenError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if len(prompt) + len(target) + 2 > model.config.max_len:
        raise InsertgenError(f"a sequence of {len(prompt) + len(target) + 2} tokens exceeds the model's buffer of "
                             f"{model.config.max_len}")
    device = next(model.parameters()).device
    batch = collate([Example(tuple(prompt), tuple(target))], model.vocab, model.config.max_len)
    x1, fixed = batch.tokens.to(device).expand(samples, -1), batch.fixed.to(device).expand(samples, -1)
    t = stratified_times(samples, 0.0, 1.0, generator, device)
    t_in, t_um, b_in, b_um = model.noising_event_times(x1, t, generator, schedule)
    return Estimate.mean_of(-elbo_integrand(model, x1, fixed, t, t_in, t_um, b_in, b_um))


def log_likelihood(model, pairs: list[tuple[list[int], list[int]]], bound: str = "elbo", samples: int = 16,
                   seed: int = 0) -> list[Estimate]:
    """Per (prompt, target) the ELBO (``elbo``: LoFlexMDM's learned schedule; ``elbo-uniform``: every b = 1),
    deterministic under ``seed``."""
    if bound not in model.likelihood_bounds:
        raise InsertgenError(f"model {model.model_id!r} gives {', '.join(model.likelihood_bounds)}, not {bound!r}")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    schedule = "uniform" if bound == "elbo-uniform" else "learned"
    return [elbo(model, prompt, target, samples, generator, schedule) for prompt, target in pairs]
