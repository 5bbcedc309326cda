"""LoFlexMDM: FlexMDM whose per-token insertion / unmasking schedules are learned (arXiv 2602.18695).

Each target token i gets Kumaraswamy schedules with a global shape ``a`` and rates ``b_in^phi_i``,
``b_um^phi_i`` from the auxiliary network ``phi`` reading the clean ``x_1``
(:mod:`insertgen.models.loflexmdm.auxiliary`); the target process of FlexMDM is then run with these per-token
hazards ``lambda^phi_i(t) = b^phi_i h_a(t)`` (:mod:`insertgen.models.schedules`). The generator (FlexMDM's
network, :class:`insertgen.models.flexmdm.model.FlexMDM`) regresses the projected rates with the same loss code:
``noised_loss`` with ``b_in``, ``b_um`` given (docs/methods/loflexmdm.md#generator-loss).

Objective per sequence (docs/methods/loflexmdm.md#joint-objective), two states ``z^(1), z^(2)`` drawn
from the same ``phi`` at one t:

    J = (l_1 + l_2) / 2                                        generator loss + pathwise phi-gradient
      + w_rf (1/2) sg(l_1 - l_2) (log p_1 - log p_2)          score function, leave-one-out with K = 2
      + w_reg [R(b_in^phi) + R(b_um^phi)]                      schedule regulariser (flex/regulariser.py)

``log p_j = sum_{i active} log P^phi_t(state of i in z^(j) | x_1)`` from the closed forms of
:meth:`KumaraswamySchedule.state_log_probs`. One backward pass trains both networks: theta through
``(l_1 + l_2)/2``; phi through the target rates inside ``l_j`` (not detached), the score-function term
and the regulariser. With ``a = 1`` and every ``b = 1`` the generator loss is FlexMDM's.

Time weighting of phi's objective. The generator may drop the common hazard factor (``time_weighting
= "none"``, which keeps its optimum at every t), but phi must not: only the hazard-weighted loss is the
ELBO, which is invariant to a common rescaling of the rates (for a = 1 and every ``b = c`` the process
is the b = 1 process run on the clock ``t' = 1 - (1 - t)^c``, and ``c h(t) dt = h(t') dt'``). Without the
weight phi would minimise ``int c D(t') dt = int D(t') (1 - t')^{(1-c)/c} dt'``, which falls as c falls,
so it drives every rate to its floor ``aux_min_rate`` (measured: b_in = 1.01 for every token within 120
steps, with or without the regulariser). With ``aux_time_weighting = "hazard"`` (default) the gradients
reaching phi, pathwise (through the target rates) and score-function (the advantage), are multiplied
per sequence by ``h_a(t) / w(t)``, ``w`` the generator's weight, so phi follows the ELBO while theta
keeps its own weighting.

Default variant (docs/methods/loflexmdm.md#default-variant, "fixed unmasking rate"): ``b_um = 1`` in both
networks and ``a = 1``, so only the insertion order is learned; ``learn_unmask=True`` learns ``b_um``
too (unstable in the paper).
Sampling is FlexMDM's tau-leaping sampler with the generator's rates ``b^theta h_a(t)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from insertgen.core.data import Batch
from insertgen.core.vocab import Vocab
from insertgen.models.flexmdm.model import FlexMDM, FlexMDMConfig
from insertgen.models.flexmdm.process import DELETED, MASKED
from insertgen.models.loflexmdm.auxiliary import AuxiliaryNetwork
from insertgen.models.loflexmdm.regulariser import (
    RegulariserWeights,
    schedule_regulariser,
)
from insertgen.nn.heads import RateHead
from insertgen.models.schedules import KumaraswamySchedule


@dataclass
class LoFlexMDMConfig(FlexMDMConfig):
    t_min: float = 1e-4  # LoFlexMDM trains on t in [1e-4, 1 - 1e-4] (docs/methods/loflexmdm.md#joint-objective)
    t_max: float = 1.0 - 1e-4
    normalisation: str = "masked_count"  # L_um / #masked, L_in / L_buf (docs/methods/loflexmdm.md#generator-loss)
    a: float = 1.0  # global Kumaraswamy shape, shared by both schedules, not learned
    learn_unmask: bool = False  # False: b_um = 1 in both networks (the paper's recommended variant)
    aux_shared: bool = False  # True: the auxiliary heads sit on the generator's trunk
    aux_d_model: int = 64
    aux_n_layers: int = 2
    aux_n_heads: int = 2
    aux_use_time: bool = False  # feed t to phi (reference code) or not (docs/methods/loflexmdm.md#auxiliary-network)
    aux_min_rate: float = 1.01  # b^phi >= 1.01 with a = 1 keeps every F(t) >= t
    aux_max_rate: float = 100.0
    aux_positive: str = "softplus"  # or "exp" (unbounded above)
    gen_min_rate: float = 0.0  # the generator's b^theta must reach 0 on empty gaps
    gen_max_rate: float = 100.0
    reinforce_weight: float = 1.0
    regulariser_weight: float = 1.0
    reg_mean: float = 1.0
    reg_boundary: float = 1.0
    reg_kl: float = 1.0
    aux_lr_scale: float = 1.0  # the auxiliary network's learning rate = aux_lr_scale * lr
    # "hazard": phi's gradients see the loss weighted by h_a(t) (the ELBO) even when the generator's
    # time_weighting is "none"; "generator": phi sees the generator's weighting (collapses b_in, see below)
    aux_time_weighting: str = "hazard"

    def __post_init__(self):
        super().__post_init__()
        if self.aux_time_weighting not in ("hazard", "generator"):
            raise ValueError(f"aux_time_weighting must be 'hazard' or 'generator', not {self.aux_time_weighting!r}")
        if self.a <= 0 or self.aux_min_rate <= 0 or self.aux_max_rate <= self.aux_min_rate:
            raise ValueError("need a > 0 and 0 < aux_min_rate < aux_max_rate")
        if self.gen_min_rate < 0 or self.gen_max_rate <= self.gen_min_rate:
            raise ValueError("need 0 <= gen_min_rate < gen_max_rate")
        if self.aux_positive not in ("softplus", "exp"):
            raise ValueError(f"aux_positive must be 'softplus' or 'exp', not {self.aux_positive!r}")
        if not self.aux_shared and (self.aux_d_model % self.aux_n_heads or (self.aux_d_model // self.aux_n_heads) % 2):
            raise ValueError(f"aux_d_model={self.aux_d_model} must split into aux_n_heads={self.aux_n_heads} "
                             "heads of even size")
        if min(self.aux_n_layers, self.aux_d_model) < 1 or self.aux_lr_scale <= 0:
            raise ValueError("aux sizes and aux_lr_scale must be positive")



def scale_gradient(x: Tensor, factor: Tensor) -> Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``factor`` in the backward pass."""
    return x.detach() + (x - x.detach()) * factor


class LoFlexMDM(FlexMDM):
    model_id = "loflexmdm"
    likelihood_bounds = ("elbo", "elbo-uniform")  # its learned schedule, or every b = 1 (models/flexmdm/elbo.py)

    def __init__(self, vocab: Vocab, config: LoFlexMDMConfig):
        super().__init__(vocab, config)
        cfg = config
        self.schedule = KumaraswamySchedule(cfg.a)
        # generator rate heads: b_in^theta is a sum of aux rates over a gap, not a count
        self.insert_head = RateHead(cfg.d_model, cfg.d_cond, min_rate=cfg.gen_min_rate, max_rate=cfg.gen_max_rate)
        self.unmask_head = (RateHead(cfg.d_model, cfg.d_cond, min_rate=cfg.gen_min_rate, max_rate=cfg.gen_max_rate)
                            if cfg.learn_unmask else None)
        self.aux = AuxiliaryNetwork(
            len(vocab), cfg.aux_d_model, cfg.aux_n_layers, cfg.aux_n_heads, cfg.mlp_ratio, cfg.d_cond, cfg.max_len,
            use_time=cfg.aux_use_time, min_rate=cfg.aux_min_rate, max_rate=cfg.aux_max_rate,
            positive=cfg.aux_positive, shared_trunk=self.trunk if cfg.aux_shared else None,
            learn_unmask=cfg.learn_unmask,
        )
        self.regulariser_weights = RegulariserWeights(mean=cfg.reg_mean, boundary=cfg.reg_boundary, kl=cfg.reg_kl)

    @property
    def insertion_unit(self) -> float:  # the sampler's rate of one missing token (flex/sampler.py)
        return self.config.aux_min_rate

    def lr_scales(self) -> dict[str, float]:
        return {"aux.": self.config.aux_lr_scale}

    def generator_rates(self, tokens: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        h, cond = self.trunk(tokens, tokens != self.vocab.pad_id, t)
        b_um = self.unmask_head(h, cond) if self.unmask_head is not None else None
        return self.token_head(h, cond), self.insert_head(h, cond), b_um

    def forward(self, tokens: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        logits, b_in, _ = self.generator_rates(tokens, t)
        return logits, b_in

    def schedule_rates(self, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """The auxiliary network's (b_in^phi, b_um^phi) on clean sequences (b_um None: fixed to 1)."""
        return self.aux(x1, x1 != self.vocab.pad_id, t)

    def noising_event_times(self, x1: Tensor, t: Tensor, generator: torch.Generator | None,
                            schedule: str = "learned") -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Event times under the learned schedule (the auxiliary network's rates on ``x1``) or, with
        ``schedule="uniform"``, under every b = 1; with the rates used."""
        if schedule == "learned":
            b_in, b_um = self.schedule_rates(x1, t)
        else:
            b_in, b_um = torch.ones(x1.shape, device=x1.device), None
        t_in, t_um = self.schedule.sample_event_times(b_in, 1.0 if b_um is None else b_um, generator)
        return t_in, t_um, b_in, b_um

    def state_log_prob(self, st, t: Tensor, b_in: Tensor, b_um: Tensor | None, active: Tensor) -> Tensor:
        """log p^phi_t(z_t | x_1) per sequence (B,): the closed-form state log-probabilities summed over
        the active positions."""
        log_d, log_m, log_c = self.schedule.state_log_probs(t[:, None], b_in, 1.0 if b_um is None else b_um)
        per_position = torch.where(st.state == DELETED, log_d, torch.where(st.state == MASKED, log_m, log_c))
        return (per_position * active.float()).sum(-1)

    def aux_loss_weight(self, t: Tensor) -> Tensor:
        """Per-sequence factor (B,) on the loss gradients that reach phi: ``h_a(t) / w(t)`` (module doc)."""
        cfg = self.config
        if cfg.aux_time_weighting == "generator" or cfg.time_weighting == "hazard":
            return torch.ones_like(t, dtype=torch.float32)
        return self.schedule.shape_hazard(t)

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        cfg = self.config
        x1, fixed = batch.tokens, batch.fixed
        active = ~fixed & (x1 != self.vocab.pad_id)
        t = self.training_times(x1.shape[0], generator, x1.device)
        b_in, b_um = self.schedule_rates(x1, t)
        aux_weight = self.aux_loss_weight(t)
        b_in_target, b_um_target = (None if b is None else scale_gradient(b, aux_weight[:, None]) for b in (b_in, b_um))
        # the two RLOO samples: two draws of event times, noised and scored in ONE generator pass over
        # the 2B stacked states (rows [sample 0 of every sequence, sample 1 of every sequence])
        draws = [self.schedule.sample_event_times(b_in.detach(), 1.0 if b_um is None else b_um.detach(), generator)
                 for _ in range(2)]
        t_in, t_um = (torch.cat([d[i] for d in draws]) for i in (0, 1))
        twice = lambda x: None if x is None else torch.cat([x, x])  # noqa: E731
        per_seq, parts, st = self.noised_loss(twice(x1), twice(fixed), twice(t), t_in, t_um,
                                              twice(b_in_target), twice(b_um_target))
        losses = per_seq.view(2, -1)
        log_probs = self.state_log_prob(st, twice(t), twice(b_in), twice(b_um), twice(active)).view(2, -1)
        tokens = int(st.valid.sum())
        parts_sum = {k: v.detach() for k, v in parts.items()}  # the mean over the 2B rows
        generator_loss = (losses[0] + losses[1]) / 2
        advantage = (losses[0] - losses[1]).detach()
        score_term = 0.5 * aux_weight * advantage * (log_probs[0] - log_probs[1])
        reg = schedule_regulariser(self.schedule, b_in, active, self.regulariser_weights, generator)
        if b_um is not None:
            reg = reg + schedule_regulariser(self.schedule, b_um, active, self.regulariser_weights, generator)
        per_seq = generator_loss + cfg.reinforce_weight * score_term + cfg.regulariser_weight * reg
        b_active = b_in.detach()[active]
        stats = {k: float(v.mean()) for k, v in parts_sum.items()}
        stats.update({
            "generator_loss": float(generator_loss.detach().mean()),
            "advantage_abs": float(advantage.abs().mean()),
            "log_p_diff_abs": float((log_probs[0] - log_probs[1]).detach().abs().mean()),
            "regulariser": float(reg.detach().mean()),
            "b_in_mean": float(b_active.mean()) if b_active.numel() else 0.0,
            "b_in_std": float(b_active.std()) if b_active.numel() > 1 else 0.0,
            "tokens": tokens,
        })
        return per_seq.mean(), stats
