"""The Insertion Process (IP, arXiv 2606.02133) and its uniform-order ablation AO-IP.

Generation inserts one token per step, choosing the slot, the token and when to stop
(:mod:`insertgen.models.ip.policy`). Training maximises the ELBO of ``log p(x) = log sum_sigma p(x, sigma)``
with a Plackett-Luce posterior over insertion orders (:mod:`insertgen.models.ip.posterior`), one sampled step
per sequence and K posterior samples (:mod:`insertgen.models.ip.objective`). AO-IP (``ao-ip``) fixes the
posterior to the uniform distribution (all scores 0) and has no posterior network.

Likelihoods (``insertgen score``):

- ``exact``: ``log p(x) = log sum_sigma p(x, sigma)`` computed by dynamic programming over the subsets of
  inserted positions (every canvas a trajectory can pass through is a subset):
  ``f(S + {j}) += f(S) pi(k(j; S), x_j | x_S)``, ``p(x) = f(all) pi(stop | x)``. It equals the
  permutation sum and costs 2^L decoder rows, so it is offered for L <= 12;
- ``elbo``: ``mean_m [log p(x, sigma_m) - log q(sigma_m)]`` over M posterior samples (a lower bound);
- ``iwae``: ``log mean_m exp(log p(x, sigma_m) - log q(sigma_m))`` (a tighter lower bound, -> exact as M grows).

Each ``log p(x, sigma)`` scores the L + 1 canvases of the trajectory in one batched pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from insertgen.core.data import Batch
from insertgen.core.errors import InsertgenError
from insertgen.core.sampling import (
    SamplerOptions,
)
from insertgen.core.tensors import compact
from insertgen.core.vocab import Vocab
from insertgen.models.ip import likelihood, sampler
from insertgen.models.ip.objective import rloo_surrogate, step_value
from insertgen.models.ip.policy import InsertionPolicy, pack_canvases
from insertgen.models.ip.posterior import (
    PosteriorNetwork,
    gumbel_top_k,
    masked_scores,
    prefix_log_prob,
)
from insertgen.nn.backbone_config import BackboneConfig

EOS_LAST_SCORE = -1e7  # classifier termination: EOS is inserted last (docs/methods/insertion-process.md#posterior)
FIXED_ORDERS = ("none", "left_to_right", "right_to_left")
FIXED_ORDER_STEP = 30.0  # Plackett-Luce score gap between neighbours of a fixed order: swaps have p ~ e^-30


@dataclass
class InsertionProcessConfig(BackboneConfig):  # max_len: the packed decoder input, also the length cap
    termination: str = "policy"  # "policy": a TERM location; "classifier": EOS in the last slot
    posterior_d_model: int = 64
    posterior_n_layers: int = 2
    posterior_n_heads: int = 2
    posterior_samples: int = 2  # K, sharing one sampled step
    posterior_lr_scale: float = 0.01  # times lr (docs/methods/insertion-process.md#posterior-learning-rate)
    posterior_entropy_bonus: float = 0.0  # beta: the posterior maximises ELBO + beta (L+1) E[H(q(. | sigma<i))]
    posterior_start_step: int = 0  # IP only: before this training step, uniform orders and no posterior update
    fixed_order: str = "none"  # AO-IP only: "left_to_right" / "right_to_left" train on that one order

    def __post_init__(self):
        super().__post_init__()
        if self.termination not in ("policy", "classifier"):
            raise ValueError(f"termination must be 'policy' or 'classifier', not {self.termination!r}")
        if self.posterior_d_model % self.posterior_n_heads or (self.posterior_d_model // self.posterior_n_heads) % 2:
            raise ValueError(f"posterior_d_model={self.posterior_d_model} must split into "
                             f"{self.posterior_n_heads} heads of even size")
        if self.posterior_n_layers < 1:
            raise ValueError("posterior_n_layers must be positive")
        if self.fixed_order not in FIXED_ORDERS:
            raise ValueError(f"fixed_order must be one of {', '.join(FIXED_ORDERS)}, not {self.fixed_order!r}")
        if self.posterior_samples < 1 or self.posterior_lr_scale <= 0:
            raise ValueError("posterior_samples >= 1 and posterior_lr_scale > 0 are required")
        if self.posterior_entropy_bonus < 0:
            raise ValueError("posterior_entropy_bonus must be >= 0")
        if self.posterior_start_step < 0:
            raise ValueError("posterior_start_step must be >= 0")


class InsertionProcess(nn.Module):
    model_id = "ip"
    learned_order = True
    likelihood_bounds = ("exact", "elbo", "iwae")

    def __init__(self, vocab: Vocab, config: InsertionProcessConfig):
        super().__init__()
        self.vocab, self.config = vocab, config
        ids = {"pad": vocab.pad_id, "mask": vocab.mask_id, "bos": vocab.bos_id, "eos": vocab.eos_id}
        self.policy = InsertionPolicy(len(vocab), ids, config.d_model, config.n_layers, config.n_heads,
                                      config.mlp_ratio, config.dropout, config.max_len, config.termination,
                                      **config.input_options())
        if self.learned_order and config.fixed_order != "none":
            raise InsertgenError(f"fixed_order={config.fixed_order!r} is an option of ao-ip (IP learns its order)")
        if not self.learned_order and config.posterior_entropy_bonus:
            raise InsertgenError("posterior_entropy_bonus is an option of ip (ao-ip has no posterior to regularise)")
        if not self.learned_order and config.posterior_start_step:
            raise InsertgenError("posterior_start_step is an option of ip (ao-ip has no posterior to start)")
        self.training_step = 0  # set by the trainer before each step (set_training_step)
        self.posterior = (PosteriorNetwork(len(vocab), config.posterior_d_model, config.posterior_n_layers,
                                           config.posterior_n_heads, config.mlp_ratio, config.max_len)
                          if self.learned_order else None)

    @property
    def termination(self) -> str:
        return self.config.termination

    def lr_scales(self) -> dict[str, float]:
        return {"posterior.": self.config.posterior_lr_scale} if self.posterior is not None else {}

    def set_training_step(self, step: int) -> None:
        """The trainer's step counter, read by :meth:`loss` for ``posterior_start_step``."""
        self.training_step = step

    @property
    def posterior_active(self) -> bool:
        """Whether training samples orders from (and updates) the posterior network: IP from
        ``posterior_start_step`` on. Before it IP trains as AO-IP does, on uniform orders, which gives
        the decoder every order's look-ups before the posterior starts choosing among them."""
        return self.posterior is not None and self.training_step >= self.config.posterior_start_step

    # ----- posterior -----
    def order_scores(self, tokens: Tensor, candidates: Tensor, uniform: bool = False) -> Tensor:
        """Plackett-Luce scores (B, L) over the candidate positions (-inf elsewhere; EOS forced last);
        ``uniform``: all candidates score 0, whatever the posterior says."""
        if self.posterior is None or uniform:
            raw = self._fixed_order_scores(candidates)
        else:
            raw = self.posterior(tokens, tokens != self.vocab.pad_id)
        scores = masked_scores(raw, candidates)
        if self.termination == "classifier":
            scores = torch.where(tokens == self.vocab.eos_id, torch.full_like(scores, EOS_LAST_SCORE), scores)
        return scores

    def _fixed_order_scores(self, candidates: Tensor) -> Tensor:
        """Scores of the order prior without a posterior network: all 0 (uniform orders: AO-IP), or
        ``+-FIXED_ORDER_STEP x`` the candidate's index (``fixed_order``: left to right / right to left,
        e.g. the goal first and then backwards on star graphs: the oracle order of an upper-bound
        experiment)."""
        index = candidates.long().cumsum(1).float()
        if self.config.fixed_order == "left_to_right":
            return -FIXED_ORDER_STEP * index
        if self.config.fixed_order == "right_to_left":
            return FIXED_ORDER_STEP * index
        return torch.zeros(candidates.shape, device=candidates.device)

    def _given(self, tokens: Tensor, fixed: Tensor) -> Tensor:
        """(B, L) fixed tokens between BOS and EOS: a prompt given in the canvas (``prompt_in_target``)."""
        v = self.vocab
        after_bos = (tokens == v.bos_id).long().cumsum(1) > 0
        return fixed & after_bos & (tokens != v.bos_id) & (tokens != v.eos_id) & (tokens != v.pad_id)

    def _candidates(self, tokens: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        """(targets, candidates): the target positions, plus the EOS position with classifier termination."""
        targets = ~fixed & (tokens != self.vocab.pad_id)
        candidates = targets | ((tokens == self.vocab.eos_id) & (self.termination == "classifier"))
        return targets, candidates

    # ----- training -----
    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        x, fixed = batch.tokens, batch.fixed
        B = x.shape[0]
        K = self.config.posterior_samples
        targets, candidates = self._candidates(x, fixed)
        decisions = targets.sum(1) + 1  # L + 1
        posterior_active = self.posterior_active
        scores = self.order_scores(x, candidates, uniform=not posterior_active)
        u = torch.rand(B, generator=generator, device=x.device)
        m = torch.minimum((u * decisions).long(), decisions - 1)  # prefix length, uniform on 0..L
        xs, fixed_k, cand_k, scores_k, m_k = (a.repeat(K, *([1] * (a.dim() - 1))) for a in (x, fixed, candidates, scores, m))
        sigma = gumbel_top_k(scores_k.detach(), generator)
        rank = torch.empty_like(sigma).scatter_(1, sigma, torch.arange(sigma.shape[1], device=x.device).expand_as(sigma))
        inserted = (rank < m_k[:, None]) & cand_k
        prefix_log_q = prefix_log_prob(scores_k, sigma, m_k)
        keep = (fixed_k & (xs != self.vocab.pad_id)) | inserted
        index, valid = compact(keep)
        packed = torch.where(valid, xs.gather(1, index), torch.full_like(index, self.vocab.pad_id))
        tables = self.policy(packed)
        terminal = (m_k == decisions.repeat(K) - 1) & (self.termination == "policy")
        given = self._given(xs, fixed_k)  # on the canvas from the start; slots count them too
        values, entropy = step_value(tables, xs, inserted, cand_k, scores_k, terminal, given)
        values, prefix_log_q = values.view(K, B), prefix_log_q.view(K, B)
        # a tempered posterior: each step's entropy counts 1 + beta times (optimum q ~ p^(1 / (1 + beta)))
        objective = values + self.config.posterior_entropy_bonus * entropy.view(K, B)
        surrogate = rloo_surrogate(objective, prefix_log_q, decisions, score_function=posterior_active)
        elbo = decisions.float() * values.mean(0)
        stats = {
            "elbo": float(elbo.detach().mean()),
            "elbo_per_token": float((elbo.detach() / decisions).mean()),
            "posterior_entropy": float(entropy.detach()[~terminal].mean()) if bool((~terminal).any()) else 0.0,
            "prefix_fraction": float((m.float() / decisions).mean()),
            "term_steps": float((m == decisions - 1).float().mean()),
            "tokens": int(valid.sum()),
        }
        if self.posterior is not None:
            stats["posterior_active"] = float(posterior_active)
        if K > 1:
            stats["rloo_variance"] = float((0.5 * (values[0] - values[1]) ** 2).detach().mean())
        return -surrogate.mean(), stats

    # ----- the policy for one canvas (docs/methods/insertion-process.md#policy-api) -----
    @torch.no_grad()
    def policy_log_probs(self, prompt_ids: list[int], canvas_ids: list[int]) -> tuple[Tensor, Tensor]:
        """(slot_logp (n+1[+1],), token_logp (n+1, V)) for one canvas; the extra last slot entry is
        TERM under policy termination."""
        device = next(self.parameters()).device
        packed = pack_canvases([prompt_ids], [canvas_ids], self.vocab.bos_id, self.vocab.eos_id, self.vocab.pad_id,
                               device)
        tables = self.policy(packed)
        bos, n = int(tables.bos[0]), int(tables.n[0])
        slots = tables.location[0, bos : bos + n + 1]
        if self.termination == "policy":
            slots = torch.cat([slots, tables.term[:1]])
        return slots.cpu(), tables.token[0, bos : bos + n + 1].cpu()

    # ----- sampling and likelihood (models/ip/sampler.py, models/ip/likelihood.py) -----
    @torch.no_grad()
    def sample(self, prompts: list[list[int]], options: SamplerOptions | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               prompt_in_target: bool = False):
        """Ancestral insertion (:func:`insertgen.models.ip.sampler.ancestral_sample`)."""
        return sampler.ancestral_sample(self, prompts, options, generator, return_trajectory, prompt_in_target)

    def trajectory_log_prob(self, prompt: list[int], target: list[int], sigmas: list[list[int]]) -> Tensor:
        """log p(x, sigma) for each permutation (:func:`insertgen.models.ip.likelihood.trajectory_log_prob`)."""
        return likelihood.trajectory_log_prob(self, prompt, target, sigmas)

    def exact_log_likelihood(self, prompt: list[int], target: list[int], stop: bool = True) -> float:
        """log p(x), the permutation sum (:func:`insertgen.models.ip.likelihood.exact_log_likelihood`)."""
        return likelihood.exact_log_likelihood(self, prompt, target, stop)

    def log_likelihood(self, pairs: list[tuple[list[int], list[int]]], bound: str = "elbo", samples: int = 16,
                       seed: int = 0) -> list[float]:
        """Per (prompt, target): ``exact`` log p(x), or the ``elbo`` / ``iwae`` bound with M samples
        (:func:`insertgen.models.ip.likelihood.log_likelihood`)."""
        return likelihood.log_likelihood(self, pairs, bound, samples, seed)

    @torch.no_grad()
    def sample_orders(self, prompt: list[int], target: list[int], samples: int,
                      generator: torch.Generator | None = None) -> tuple[list[list[int]], Tensor]:
        """M posterior permutations of the target positions and their log q (M,)."""
        v = self.vocab
        row = torch.tensor([list(prompt) + [v.bos_id] + list(target) + [v.eos_id]],
                           device=next(self.parameters()).device)
        fixed = torch.ones_like(row, dtype=torch.bool)
        fixed[0, len(prompt) + 1 : len(prompt) + 1 + len(target)] = False
        _, candidates = self._candidates(row, fixed)
        scores = self.order_scores(row, candidates).expand(samples, -1)
        sigma = gumbel_top_k(scores, generator)
        n = int(candidates.sum())
        log_q = prefix_log_prob(scores, sigma, torch.full((samples,), n, device=row.device)).double().cpu()
        offset = len(prompt) + 1
        orders = [[int(j) - offset for j in s[: len(target)]] for s in sigma.cpu()]
        return orders, log_q

class AOInsertionProcess(InsertionProcess):
    """AO-IP: the Insertion Process trained with uniformly random insertion orders (no posterior)."""

    model_id = "ao-ip"
    learned_order = False
