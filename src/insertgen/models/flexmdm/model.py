"""FlexMDM: any-order variable-length masked diffusion with linear schedules (Kim et al. 2025).

Generator: one bidirectional Transformer on ``(x_t, t)`` with a token head ``K_theta(v | x_t, k)``
and an insertion head ``g_theta(k) >= 0`` = the expected number of tokens still missing in the gap
left of slot k (``softplus(.) * L_buf``). Target rates (linear schedule, hazard ``h(t) = 1/(1-t)``):
unmasking ``h(t)`` per masked slot, insertion ``h(t) * #deleted in gap k``; the model's rates are
``h(t) K_theta`` and ``h(t) g_theta``. The loss is :func:`insertgen.models.flexmdm.loss.rate_matching_loss`
(docs/methods/flexmdm.md#loss). With ``time_weighting="none"`` the common factor ``h(t)`` is dropped from
both sides, which leaves the minimiser unchanged at every t (``D(cp, cq) = c D(p, q)``) but removes the
``1/(1-t)`` weight from the stochastic gradient. Likewise the training-time distribution
(``t = 1 - (1 - u)^time_power``, u stratified uniform) only reweights the per-t objectives: the optimum
at every (x_t, t) stays the projected rate, while more of the compute goes to late, nearly complete
canvases, which are the states a confidence-ordered sampler relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from insertgen.core.data import Batch
from insertgen.core.generation import Requests
from insertgen.core.estimates import Estimate
from insertgen.core.vocab import Vocab
from insertgen.models.flexmdm import elbo
from insertgen.models.flexmdm.loss import rate_matching_loss
from insertgen.models.flexmdm.process import NoisyState, noise
from insertgen.models.flexmdm.sampler import TauLeapingOptions, tau_leaping_sample
from insertgen.nn.backbone_config import BackboneConfig
from insertgen.nn.heads import RateHead, TokenHead
from insertgen.nn.transformer import RESIDUAL_GATES, Transformer, TransformerConfig
from insertgen.models.schedules import LinearSchedule, stratified_times


@dataclass
class FlexMDMConfig(BackboneConfig):  # max_len: the sampling buffer L_buf, also the loss normaliser
    d_cond: int = 128
    time_weighting: str = "hazard"  # "hazard": h(t) weight; "none": drop it (docs/methods/flexmdm.md#time-weighting)
    t_min: float = 0.0  # training times t ~ stratified U[t_min, t_max)
    t_max: float = 1.0 - 1e-6
    time_power: float = 1.0  # t = 1 - (1 - u)^time_power: > 1 puts more training times near t = 1
    normalisation: str = "buffer"  # "buffer": both sums / L_buf (FlexMDM code); "masked_count" (LoFlexMDM code)
    residual_gate: str = "one_plus"  # the blocks' time gate: "one_plus" (1 + gate) or "zero" (adaLN-Zero)

    def __post_init__(self):
        super().__post_init__()
        if self.residual_gate not in RESIDUAL_GATES:
            raise ValueError(f"residual_gate must be one of {', '.join(RESIDUAL_GATES)}, not {self.residual_gate!r}")
        if self.time_weighting not in ("hazard", "none"):
            raise ValueError(f"time_weighting must be 'hazard' or 'none', not {self.time_weighting!r}")
        if self.normalisation not in ("buffer", "masked_count"):
            raise ValueError(f"normalisation must be 'buffer' or 'masked_count', not {self.normalisation!r}")
        if not 0.0 <= self.t_min < self.t_max:
            raise ValueError("t_min must be in [0, t_max)")
        if self.d_cond < 1:
            raise ValueError("d_cond must be positive")
        if not 0.0 < self.t_max <= 1.0 or self.time_power <= 0:
            raise ValueError("t_max must be in (0, 1] and time_power > 0")


class FlexMDM(nn.Module):
    model_id = "flexmdm"
    likelihood_bounds = ("elbo",)  # models/flexmdm/elbo.py

    def __init__(self, vocab: Vocab, config: FlexMDMConfig):
        super().__init__()
        self.vocab, self.config = vocab, config
        self.trunk = Transformer(TransformerConfig(
            vocab_size=len(vocab), d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads,
            mlp_ratio=config.mlp_ratio, dropout=config.dropout, causal=False, time_conditioning=True,
            d_cond=config.d_cond, max_len=config.max_len, residual_gate=config.residual_gate,
            **config.input_options(),
        ))
        self.token_head = TokenHead(config.d_model, len(vocab), config.d_cond)
        self.insert_head = RateHead(config.d_model, config.d_cond, min_rate=0.0, max_rate=float(config.max_len))
        self.schedule = LinearSchedule()

    def forward(self, tokens: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L) tokens and (B,) times -> token logits (B, L, V) and expected gap counts g (B, L)."""
        h, cond = self.trunk(tokens, tokens != self.vocab.pad_id, t)
        return self.token_head(h, cond), self.insert_head(h, cond)

    def training_times(self, batch_size: int, generator: torch.Generator | None, device=None) -> Tensor:
        """Stratified t on [t_min, t_max), warped by ``t = 1 - (1 - u)^time_power``."""
        cfg = self.config
        u = stratified_times(batch_size, cfg.t_min, cfg.t_max, generator, device)
        return 1.0 - (1.0 - u) ** cfg.time_power

    def noised_loss(self, x1: Tensor, fixed: Tensor, t: Tensor, t_in: Tensor, t_um: Tensor,
                    b_in: Tensor | None = None, b_um: Tensor | None = None) -> tuple[Tensor, dict, NoisyState]:
        """Per-sequence loss (B,) of the generator on the state given by the event times.

        Target rates per aligned position j are ``b_j h(t)`` (``b = 1`` when ``b_in`` / ``b_um`` is None,
        i.e. FlexMDM): insertion into gap k ``G_k = h(t) sum_{j in gap k} b_in_j``, unmasking of slot k
        ``h(t) b_um_{s_t[k]}``; the model's are ``h(t) g_theta(k)`` and ``h(t) b_um_theta(k)`` (1 when the
        model has no unmasking head). The targets keep their graph, so a caller can differentiate
        through them (LoFlexMDM's pathwise gradient)."""
        st = noise(x1, fixed, t, t_in, t_um, self.vocab.pad_id, self.vocab.mask_id)
        logits, g, b_um_model = self.generator_rates(st.x_t, t)
        if self.config.time_weighting == "hazard":
            h = self.schedule.hazard(t)[:, None].expand(g.shape)  # (B, Lt)
        else:
            h = torch.ones_like(g)
        insert_target = h * (st.gap_count if b_in is None else st.gap_sums(b_in))
        unmask_target = h if b_um is None else h * b_um.float().gather(1, st.s_t)
        unmask_model = h if b_um_model is None else h * b_um_model
        per_seq, parts = rate_matching_loss(
            logits, st.clean_tokens, st.masked, st.valid,
            unmask_rate_target=unmask_target, unmask_rate_model=unmask_model,
            insert_rate_target=insert_target, insert_rate_model=h * g,
            norm_length=self.config.max_len, normalisation=self.config.normalisation,
        )
        return per_seq, parts, st

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        x1, fixed = batch.tokens, batch.fixed
        t = self.training_times(x1.shape[0], generator, x1.device)
        t_in, t_um = self.schedule.sample_event_times(torch.ones(x1.shape, device=x1.device), 1.0, generator)
        per_seq, parts, st = self.noised_loss(x1, fixed, t, t_in, t_um)
        stats = {k: float(v.detach().mean()) for k, v in parts.items()}
        stats["tokens"] = int(st.valid.sum())
        return per_seq.mean(), stats

    def noising_event_times(self, x1: Tensor, t: Tensor, generator: torch.Generator | None,
                            schedule: str = "learned") -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Event times (T_in, T_um) of every position of ``x1`` under the noising schedule, and the per-token
        rates (b_in, b_um) behind them: the linear schedule, rates None (b = 1), whatever ``schedule``."""
        t_in, t_um = self.schedule.sample_event_times(torch.ones(x1.shape, device=x1.device), 1.0, generator)
        return t_in, t_um, None, None

    def log_likelihood(self, pairs: list[tuple[list[int], list[int]]], bound: str = "elbo", samples: int = 16,
                       seed: int = 0) -> list[Estimate]:
        """Per (prompt, target) the ELBO, estimated from ``samples`` draws of (t, z_t)
        (:func:`insertgen.models.flexmdm.elbo.log_likelihood`)."""
        return elbo.log_likelihood(self, pairs, bound, samples, seed)

    def generator_rates(self, tokens: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Token logits, insertion multipliers and unmasking multipliers (None: fixed to 1)."""
        logits, g = self(tokens, t)
        return logits, g, None

    def predictor(self):
        return self.generator_rates

    # rate of one missing token in the sampler's insertion step (module doc of flex/sampler.py)
    insertion_unit = 1.0

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], options: TauLeapingOptions | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               prompt_in_target: bool = False):
        """Generate a target for each prompt (data-token ids). Returns the outputs (lists of ids), or
        ``(outputs, SampleOutput)`` with per-token insertion/unmasking steps when ``return_trajectory``.
        With ``prompt_in_target`` each prompt's tokens start on the canvas after BOS, fixed, and the
        sampler inserts around and between them; the output is the whole canvas."""
        options = TauLeapingOptions.of(options)
        device = next(self.parameters()).device
        requests = Requests.of(prompts, self.vocab, self.config.max_len, prompt_in_target)
        tokens, fixed = requests.canvas(self.config.max_len)
        open_from = torch.tensor([len(c) + 1 for c in requests.context], dtype=torch.long)
        v = self.vocab
        result = tau_leaping_sample(
            self.predictor(), self.schedule.integrated_hazard, tokens.to(device), fixed.to(device),
            banned_tokens=[v.pad_id, v.mask_id, v.bos_id, v.eos_id], pad_id=v.pad_id, mask_id=v.mask_id,
            options=options, generator=generator, insertion_unit=self.insertion_unit, open_from=open_from,
            unmask_cdf=self.schedule.unmask_time_cdf,
        )
        outputs = requests.outputs(result.tokens)
        return (outputs, result) if return_trajectory else outputs
