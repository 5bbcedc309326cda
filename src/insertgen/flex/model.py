"""FlexMDM: any-order variable-length masked diffusion with linear schedules (Kim et al. 2025).

Generator: one bidirectional Transformer on ``(x_t, t)`` with a token head ``K_theta(v | x_t, k)``
and an insertion head ``g_theta(k) >= 0`` = the expected number of tokens still missing in the gap
left of slot k (``softplus(.) * L_buf``). Target rates (linear schedule, hazard ``h(t) = 1/(1-t)``):
unmasking ``h(t)`` per masked slot, insertion ``h(t) * #deleted in gap k``; the model's rates are
``h(t) K_theta`` and ``h(t) g_theta``. The loss is :func:`insertgen.flex.loss.rate_matching_loss`
(spec loflexmdm.md §3.2). With ``time_weighting="none"`` the common factor ``h(t)`` is dropped from
both sides, which leaves the minimiser unchanged at every t (``D(cp, cq) = c D(p, q)``) but removes the
``1/(1-t)`` weight from the stochastic gradient. Likewise the training-time distribution
(``t = 1 - (1 - u)^time_power``, u stratified uniform) only reweights the per-t objectives: the optimum
at every (x_t, t) stays the projected rate, while more of the compute goes to late, nearly complete
canvases, which are the states a confidence-ordered sampler relies on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from insertgen.data import Batch, prompt_canvas, split_output
from insertgen.flex.loss import rate_matching_loss
from insertgen.flex.process import noise
from insertgen.flex.sampler import SampleOutput, SamplerOptions, tau_leaping_sample
from insertgen.nn.heads import RateHead, TokenHead
from insertgen.options import from_dict
from insertgen.nn.transformer import Transformer, TransformerConfig
from insertgen.schedules import LinearSchedule
from insertgen.vocab import Vocab


@dataclass
class FlexMDMConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    d_cond: int = 128
    max_len: int = 64  # sampling buffer L_buf = prompt_block + target_block + 2; also the loss normaliser
    time_weighting: str = "hazard"  # "hazard": the spec's h(t) weight; "none": drop the common h(t)
    t_max: float = 1.0 - 1e-6  # training times t ~ stratified U[0, t_max)
    time_power: float = 1.0  # t = 1 - (1 - u)^time_power: > 1 puts more training times near t = 1

    def __post_init__(self):
        if self.time_weighting not in ("hazard", "none"):
            raise ValueError(f"time_weighting must be 'hazard' or 'none', not {self.time_weighting!r}")
        if min(self.d_model, self.n_layers, self.n_heads, self.mlp_ratio, self.d_cond, self.max_len) < 1:
            raise ValueError("sizes (d_model, n_layers, n_heads, mlp_ratio, d_cond, max_len) must be positive")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model={self.d_model} must split into n_heads={self.n_heads} heads of even size")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.t_max <= 1.0 or self.time_power <= 0:
            raise ValueError("dropout must be in [0, 1), t_max in (0, 1] and time_power > 0")

    @classmethod
    def from_dict(cls, d: dict) -> "FlexMDMConfig":
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)


def stratified_times(batch_size: int, t_max: float, generator: torch.Generator | None, device=None) -> Tensor:
    """t_i = (i + u_i) t_max / B, i = 0..B-1, u_i ~ U(0, 1): one time per sequence, stratified."""
    u = torch.rand(batch_size, generator=generator, device=device)
    return (torch.arange(batch_size, device=device) + u) * (t_max / batch_size)


class FlexMDM(nn.Module):
    model_id = "flexmdm"

    def __init__(self, vocab: Vocab, config: FlexMDMConfig):
        super().__init__()
        self.vocab, self.config = vocab, config
        self.trunk = Transformer(TransformerConfig(
            vocab_size=len(vocab), d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads,
            mlp_ratio=config.mlp_ratio, dropout=config.dropout, causal=False, time_conditioning=True,
            d_cond=config.d_cond, max_len=config.max_len,
        ))
        self.token_head = TokenHead(config.d_model, len(vocab), config.d_cond)
        self.insert_head = RateHead(config.d_model, config.d_cond, min_rate=0.0, max_rate=float(config.max_len))
        self.schedule = LinearSchedule()

    def forward(self, tokens: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L) tokens and (B,) times -> token logits (B, L, V) and expected gap counts g (B, L)."""
        h, cond = self.trunk(tokens, tokens != self.vocab.pad_id, t)
        return self.token_head(h, cond), self.insert_head(h, cond)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        x1, fixed = batch.tokens, batch.fixed
        u = stratified_times(x1.shape[0], self.config.t_max, generator, x1.device)
        t = 1.0 - (1.0 - u) ** self.config.time_power
        t_in, t_um = self.schedule.sample_event_times(x1.shape, generator, x1.device)
        st = noise(x1, fixed, t, t_in, t_um, self.vocab.pad_id, self.vocab.mask_id)
        logits, g = self(st.x_t, t)
        if self.config.time_weighting == "hazard":
            weight = self.schedule.hazard(t)[:, None].expand_as(g)  # (B, Lt)
        else:
            weight = torch.ones_like(g)
        per_seq, parts = rate_matching_loss(
            logits, st.clean_tokens, st.masked, st.valid,
            unmask_rate_target=weight, unmask_rate_model=weight,
            insert_rate_target=weight * st.gap_count, insert_rate_model=weight * g,
            norm_length=self.config.max_len, normalisation="buffer",
        )
        loss = per_seq.mean()
        stats = {k: float(v.detach().mean()) for k, v in parts.items()}
        stats["tokens"] = int(st.valid.sum())
        return loss, stats

    def predictor(self):
        def predict(tokens: Tensor, t: Tensor):
            logits, g = self(tokens, t)
            return logits, g, None

        return predict

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], options: SamplerOptions | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False):
        """Generate a target for each prompt (data-token ids). Returns the outputs (lists of ids), or
        ``(outputs, SampleOutput)`` with per-token insertion/unmasking steps when ``return_trajectory``."""
        options = options or SamplerOptions()
        device = next(self.parameters()).device
        tokens, fixed = prompt_canvas(prompts, self.vocab, self.config.max_len)
        v = self.vocab
        result = tau_leaping_sample(
            self.predictor(), self.schedule.integrated_hazard, tokens.to(device), fixed.to(device),
            banned_tokens=[v.pad_id, v.mask_id, v.bos_id, v.eos_id], pad_id=v.pad_id, mask_id=v.mask_id,
            options=options, generator=generator,
        )
        outputs = [split_output(row, v) for row in result.tokens]
        return (outputs, result) if return_trajectory else outputs
