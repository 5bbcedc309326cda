"""Fixed-canvas masked diffusion baseline (MDM, MDLM-style absorbing process, linear schedule).

Canvas: ``[prompt, BOS, y_1 .. y_N]`` with ``N`` = the task's target block; the target fills the first
slots and PAD (an ordinary token here, the model predicts it) the rest, so the length is encoded by
where the PADs start. The prompt and BOS are never masked.

Forward process: at time t in (0, 1] every target slot is independently MASK with probability t
(``alpha_t = 1 - t``). The negative ELBO of the canvas (Sahoo et al. 2024, linear schedule):

    -log p(y | prompt) <= E_{t ~ U(0,1)} E_{y_t} [ (1/t) sum_{j masked} -log p_theta(y_j | y_t, prompt) ]

Training minimises this bound divided by N (the 1/t-weighted cross-entropy on masked slots, averaged
over the N target slots), with t stratified on [t_min, 1] (t_min = 1e-3 leaves out a sliver of the
integral whose integrand stays finite as t -> 0); ``score`` returns the Monte-Carlo estimate with M
stratified times on (0, 1] (``bound="elbo"``, a lower bound on the log-likelihood of the PAD-completed
canvas).

Sampling starts from an all-MASK target and runs ``S = min(steps, N)`` steps; step s unmasks
``round(N (s+1)/S) - round(N s/S)`` slots, chosen uniformly at random among the masked ones (MDLM's
order) or, with ``confidence`` = ``top_prob`` / ``prob_diff``, the most confident ones; each takes a token
drawn from ``p_theta`` (temperature / top-k / top-p / greedy) with MASK, BOS and EOS excluded, PAD allowed.
The output is the canvas with every PAD removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from insertgen.core.data import Batch
from insertgen.core.errors import InsertgenError
from insertgen.core.estimates import Estimate
from insertgen.core.generation import Requests
from insertgen.core.sampling import (
    SamplerOptions,
    confidence_scores,
    option,
    sample_from_logits,
)
from insertgen.core.vocab import Vocab
from insertgen.nn.backbone_config import BackboneConfig
from insertgen.nn.heads import TokenHead
from insertgen.nn.transformer import Transformer, TransformerConfig
from insertgen.models.schedules import stratified_times


@dataclass
class UnmaskingOptions(SamplerOptions):
    """The MDM sampler's options beyond every sampler's: ``steps``, the number of unmasking steps (at most
    the canvas length); ``confidence`` None unmasks random slots, else the surest first."""

    steps: int = option(128, "Sampler time steps.", low=1)


@dataclass
class MDMConfig(BackboneConfig):
    target_len: int = 0  # N; 0 = max_len - 2 - prompt block, set by the training run from the task
    t_min: float = 1e-3  # training times t ~ stratified U[t_min, 1]
    time_conditioning: bool = False  # MDLM: the mask count already tells the model t

    def __post_init__(self):
        super().__post_init__()
        if self.target_len < 0 or self.target_len > self.max_len - 1:
            raise ValueError("target_len must be in [0, max_len - 1]")
        if not 0.0 < self.t_min < 1.0:
            raise ValueError("t_min must be in (0, 1)")


class MDM(nn.Module):
    model_id = "mdm"
    likelihood_bounds = ("elbo",)

    def __init__(self, vocab: Vocab, config: MDMConfig):
        super().__init__()
        self.vocab, self.config = vocab, config
        self.trunk = Transformer(TransformerConfig(
            vocab_size=len(vocab), d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads,
            mlp_ratio=config.mlp_ratio, dropout=config.dropout, causal=False,
            time_conditioning=config.time_conditioning, d_cond=config.d_model, max_len=config.max_len,
            **config.input_options(),
        ))
        self.head = TokenHead(config.d_model, len(vocab), config.d_model if config.time_conditioning else None)
        banned = torch.zeros(len(vocab), dtype=torch.bool)
        banned[[vocab.mask_id, vocab.bos_id, vocab.eos_id]] = True  # PAD is an ordinary token of the canvas
        self.register_buffer("banned", banned, persistent=False)

    @property
    def target_len(self) -> int:
        return self.config.target_len or self.config.max_len - 2

    def forward(self, tokens: Tensor, real: Tensor, t: Tensor | None = None) -> Tensor:
        """Token logits (B, W, V) (MASK, BOS, EOS excluded); ``real`` marks canvas positions (not batch padding)."""
        h, cond = self.trunk(tokens, real, t if self.config.time_conditioning else None)
        return self.head(h, cond).float().masked_fill(self.banned, float("-inf"))

    def canvas(self, prompts: list[list[int]], targets: list[list[int]] | None,
               device=None) -> tuple[Tensor, Tensor, Tensor]:
        """(tokens, real, slot) for ``[prompt, BOS, target + PAD...]`` rows of width max prompt + 1 + N;
        ``slot`` marks the N target slots. ``targets=None`` gives all-MASK targets (a sampler's target with
        given tokens, a prompt inside the target, is ``start + [MASK] * (N - len(start))``)."""
        v, N = self.vocab, self.target_len
        width = max(len(p) for p in prompts) + 1 + N
        tokens = torch.full((len(prompts), width), v.pad_id, dtype=torch.long)
        real = torch.zeros((len(prompts), width), dtype=torch.bool)
        slot = torch.zeros_like(real)
        for i, p in enumerate(prompts):
            y = [v.mask_id] * N if targets is None else list(targets[i]) + [v.pad_id] * (N - len(targets[i]))
            if len(y) > N:
                raise InsertgenError(f"a target of {len(targets[i])} tokens exceeds the canvas of {N}")
            if len(p) + 1 + N > self.config.max_len:
                raise InsertgenError(f"a prompt of {len(p)} tokens does not fit the buffer of {self.config.max_len}")
            tokens[i, : len(p) + 1 + N] = torch.tensor(list(p) + [v.bos_id] + y, dtype=torch.long)
            real[i, : len(p) + 1 + N] = True
            slot[i, len(p) + 1 : len(p) + 1 + N] = True
        return tokens.to(device), real.to(device), slot.to(device)

    def _canvas_from_batch(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """The training batch ``[prompt, BOS, target, EOS, PAD...]`` rewritten as MDM canvases; ``slot``
        marks the slots that are noised (target slots that are not fixed: a prompt inside the target
        stays unmasked)."""
        v, N = self.vocab, self.target_len
        tokens, fixed = batch.tokens, batch.fixed
        bos = (tokens == v.bos_id).float().argmax(1, keepdim=True)
        eos = (tokens == v.eos_id).float().argmax(1, keepdim=True)
        length = eos - bos - 1
        if bool((length > N).any()):
            raise InsertgenError(f"a target of {int(length.max())} tokens exceeds the canvas of {N}")
        width = int(bos.max()) + 1 + N
        tokens = F.pad(tokens, (0, max(0, width - tokens.shape[1])), value=v.pad_id)[:, :width]
        col = torch.arange(width, device=tokens.device)[None]
        slot = (col > bos) & (col <= bos + N)
        canvas = torch.where(slot & (col > bos + length), torch.full_like(tokens, v.pad_id), tokens)
        fixed = F.pad(fixed, (0, max(0, width - fixed.shape[1])), value=False)[:, :width]
        given = fixed & (col > bos) & (col <= bos + length)  # prompt tokens at the start of the target
        return canvas, col <= bos + N, slot & ~given

    @staticmethod
    def mask_at(slot: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
        """Each target slot masked independently with probability t: (B, W) bool."""
        u = torch.rand(slot.shape, generator=generator, device=slot.device)
        return slot & (u < t[:, None])

    def weighted_nll(self, canvas: Tensor, real: Tensor, slot: Tensor, t: Tensor,
                     generator: torch.Generator | None) -> Tensor:
        """(1/t) sum_{masked} -log p_theta(y_j | y_t): one draw of the bound's integrand per row (B,)."""
        masked = self.mask_at(slot, t, generator)
        noisy = torch.where(masked, torch.full_like(canvas, self.vocab.mask_id), canvas)
        logp = torch.log_softmax(self(noisy, real, t), dim=-1)
        nll = -logp.gather(-1, canvas[..., None]).squeeze(-1).masked_fill(~masked, 0.0)
        return nll.sum(1) / t.clamp_min(1e-12)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        canvas, real, slot = self._canvas_from_batch(batch)
        t = stratified_times(canvas.shape[0], self.config.t_min, 1.0, generator, canvas.device)
        bound = self.weighted_nll(canvas, real, slot, t, generator)
        per_slot = bound / self.target_len
        return per_slot.mean(), {"nelbo_per_seq": float(bound.detach().mean()), "tokens": int(slot.sum())}

    # ----- sampling -----
    @staticmethod
    def unmask_counts(n_slots: int, steps: int) -> list[int]:
        """Slots unmasked at each of ``steps`` steps: ``round(N (s+1)/S) - round(N s/S)`` (sum N, near-equal)."""
        return [round(n_slots * (s + 1) / steps) - round(n_slots * s / steps) for s in range(steps)]

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], options: SamplerOptions | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               prompt_in_target: bool = False):
        """Unmask the all-MASK target in ``min(steps, N)`` steps (module doc); ``order`` does not apply.
        With ``prompt_in_target`` the prompt fills the first target slots, unmasked, and is part of the
        output."""
        options = UnmaskingOptions.of(options)
        v, N = self.vocab, self.target_len
        device = next(self.parameters()).device
        requests = Requests.of(prompts, v, self.config.max_len, prompt_in_target)
        masked_targets = [list(s) + [v.mask_id] * (N - len(s)) for s in requests.start]
        tokens, real, slot = self.canvas(requests.context, masked_targets, device)
        B = tokens.shape[0]
        S = min(options.steps, N)
        unmask_step = torch.full(tokens.shape, -1, dtype=torch.long, device=device)
        choose = dict(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
        for s, n_fire in enumerate(self.unmask_counts(N, S)):
            masked = tokens == v.mask_id
            t = masked.sum(1).float() / N
            logits = self(tokens, real, t)
            if options.confidence is None:
                score = torch.rand(tokens.shape, generator=generator, device=device)
            else:
                score = confidence_scores(torch.softmax(logits, dim=-1), options.confidence)
            score = score.masked_fill(~masked, float("-inf"))
            rank = torch.argsort(torch.argsort(score, dim=1, descending=True), dim=1)
            fire = masked & (rank < n_fire)
            drawn = sample_from_logits(logits, generator, **choose)
            tokens = torch.where(fire, drawn, tokens)
            unmask_step = torch.where(fire, torch.full_like(unmask_step, s), unmask_step)
        outputs, steps = [], []
        for i, c in enumerate(requests.context):
            cols = [j for j in range(len(c) + 1, len(c) + 1 + N) if int(tokens[i, j]) != v.pad_id]
            outputs.append([int(tokens[i, j]) for j in cols])
            steps.append([int(unmask_step[i, j]) for j in cols])
        return requests.result(outputs, return_trajectory, insert_step=[[-1] * len(o) for o in outputs],
                               unmask_step=steps, model_evals=[S] * B, forward_calls=S)

    # ----- likelihood -----
    @torch.no_grad()
    def log_likelihood(self, pairs: list[tuple[list[int], list[int]]], bound: str = "elbo", samples: int = 16,
                       seed: int = 0) -> list[Estimate]:
        """The ELBO (a lower bound on log p of the PAD-completed canvas), M = ``samples`` stratified times."""
        if bound not in self.likelihood_bounds:
            raise InsertgenError(f"model 'mdm' gives the ELBO (a lower bound) only, not {bound!r}")
        device = next(self.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        out = []
        for prompt, target in pairs:
            canvas, real, slot = self.canvas([prompt], [target], device)
            M = samples
            t = stratified_times(M, 0.0, 1.0, generator, device)
            nll = self.weighted_nll(canvas.expand(M, -1), real.expand(M, -1), slot.expand(M, -1), t, generator)
            out.append(Estimate.mean_of(-nll))
        return out
