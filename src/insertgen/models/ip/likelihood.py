"""Log-likelihoods of the Insertion Process (docs/methods/insertion-process.md#bounds): of one trajectory,
exact by dynamic programming over the subsets of inserted positions, and the ELBO / IWAE lower bounds
from orders drawn from the posterior.

    log p(x) = log sum_sigma p(x, sigma) >= E_q[log p(x, sigma) - log q(sigma | x)]            (ELBO)
             >= E[log (1/M) sum_m p(x, sigma_m) / q(sigma_m | x)]  (IWAE, M samples; tighter as M grows)
"""

from __future__ import annotations

import torch
from torch import Tensor

from insertgen.core.errors import InsertgenError
from insertgen.core.estimates import Estimate
from insertgen.models.ip.permutations import slots_from_permutation
from insertgen.models.ip.policy import pack_canvases

EXACT_MAX_LENGTH = 12


def stop_log_prob(model, tables, rows: Tensor) -> Tensor:
    if model.termination == "policy":
        return tables.term[rows]
    last = tables.bos[rows] + tables.n[rows]
    return tables.location[rows, last] + tables.token[rows, last, model.vocab.eos_id]

def policy_batch(model, prompt: list[int], canvases: list[list[int]], chunk: int = 512):
    """Policy tables for many canvases of one prompt, in chunks; yields (offset, tables)."""
    device = next(model.parameters()).device
    for start in range(0, len(canvases), chunk):
        part = canvases[start : start + chunk]
        packed = pack_canvases([prompt] * len(part), part, model.vocab.bos_id, model.vocab.eos_id,
                               model.vocab.pad_id, device)
        yield start, model.policy(packed)

@torch.no_grad()
def trajectory_log_prob(model, prompt: list[int], target: list[int], sigmas: list[list[int]]) -> Tensor:
    """log p(x, sigma) for each permutation (M,): L insertions then the stop decision, all L + 1
    canvases of all trajectories scored in batched passes."""
    L = len(target)
    canvases, actions = [], []  # actions: (trajectory, slot, token) or (trajectory, None, None) = stop
    for m, sigma in enumerate(sigmas):
        slots = slots_from_permutation(sigma)
        for t in range(L + 1):
            canvases.append([target[j] for j in sorted(sigma[:t])])
            actions.append((m, slots[t], target[sigma[t]]) if t < L else (m, None, None))
    total = torch.zeros(len(sigmas), dtype=torch.float64)
    for offset, tables in policy_batch(model, prompt, canvases):
        for r in range(tables.n.shape[0]):
            m, k, tok = actions[offset + r]
            if k is None:
                lp = stop_log_prob(model, tables, r)
            else:
                pos = tables.bos[r] + k
                lp = tables.location[r, pos] + tables.token[r, pos, tok]
            total[m] += float(lp)
    return total

@torch.no_grad()
def exact_log_likelihood(model, prompt: list[int], target: list[int], stop: bool = True) -> float:
    """log p(x) by dynamic programming over subsets of inserted positions (= the permutation sum);
    ``stop=False`` leaves out the final stop decision (a forced stop, e.g. at a length cap)."""
    L = len(target)
    if L > EXACT_MAX_LENGTH:
        raise InsertgenError(f"exact likelihood enumerates 2^L canvases; L = {L} exceeds {EXACT_MAX_LENGTH}")
    subsets = list(range(1 << L))
    canvases = [[target[j] for j in range(L) if s >> j & 1] for s in subsets]
    loc_rows, tok_rows, stop_lp = {}, {}, 0.0
    for offset, tables in policy_batch(model, prompt, canvases):
        for r in range(tables.n.shape[0]):
            s = subsets[offset + r]
            bos = int(tables.bos[r])
            n = int(tables.n[r])
            loc_rows[s] = tables.location[r, bos : bos + n + 1].double().cpu()
            tok_rows[s] = tables.token[r, bos : bos + n + 1].double().cpu()
            if s == (1 << L) - 1:
                stop_lp = float(stop_log_prob(model, tables, r))
    log_f = torch.full((1 << L,), float("-inf"), dtype=torch.float64)
    log_f[0] = 0.0
    for s in sorted(subsets, key=lambda z: bin(z).count("1")):
        if log_f[s] == float("-inf") and s != 0:
            continue
        for j in range(L):
            if s >> j & 1:
                continue
            k = bin(s & ((1 << j) - 1)).count("1")
            step = loc_rows[s][k] + tok_rows[s][k, target[j]]
            t = s | (1 << j)
            log_f[t] = torch.logaddexp(log_f[t], log_f[s] + step)
    return float(log_f[(1 << L) - 1]) + (stop_lp if stop else 0.0)

@torch.no_grad()
def log_likelihood(model, pairs: list[tuple[list[int], list[int]]], bound: str = "elbo", samples: int = 16,
                   seed: int = 0) -> list[Estimate]:
    """Per (prompt, target): ``exact`` log p(x), or the ``elbo`` / ``iwae`` lower bound with M samples."""
    if bound not in model.likelihood_bounds:
        raise InsertgenError(f"unknown bound {bound!r}; choose from {', '.join(model.likelihood_bounds)}")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    out = []
    for prompt, target in pairs:
        if len(prompt) + len(target) + 2 > model.config.max_len:
            raise InsertgenError(f"a sequence of {len(prompt) + len(target) + 2} tokens exceeds the model's "
                                 f"buffer of {model.config.max_len}")
        if bound == "exact":
            out.append(Estimate(exact_log_likelihood(model, prompt, target)))
            continue
        orders, log_q = model.sample_orders(prompt, target, samples, generator)
        log_w = trajectory_log_prob(model, prompt, target, orders) - log_q
        out.append(Estimate.mean_of(log_w) if bound == "elbo" else Estimate.log_mean_exp_of(log_w))
    return out
