"""What a model family is: the written interface of its model (:class:`GenerativeModel`) and the record
the rest of the library reads about it (:class:`ModelFamily`).

Every application (CLI, evaluation, presets, reproduce, claims, demo, report, benchmarks) learns what a
model can do from its family, never from its id or by probing attributes. Adding a family is one folder
under ``insertgen/models/`` and one :func:`insertgen.models.registry.register` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import Tensor

from insertgen.core.data import Batch
from insertgen.core.sampling import SampleOutput, SamplerOptions

CAPABILITIES = {
    "score": "log_likelihood(pairs, bound, samples, seed): an exact value or bounds (its likelihood_bounds)",
    "trajectory": "generates by insertion: the demo and report show when each token was inserted",
    "schedule_profile": "learned per-token schedules (schedule_rates): the report draws the learned order",
    "posterior_orders": "a learned posterior over generation orders (sample_orders)",
    "lr_scales": "per-module learning-rate factors (lr_scales())",
    "training_step": "a loss that changes with the training step (set_training_step(step))",
}


@runtime_checkable
class GenerativeModel(Protocol):
    """The interface every model implements (a ``torch.nn.Module``). Optional methods belong to the
    capabilities of :data:`CAPABILITIES` its family declares."""

    model_id: str

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """The training loss of a batch (a scalar to minimise) and statistics to log."""

    def sample(self, prompts: list[list[int]], options: SamplerOptions | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               prompt_in_target: bool = False) -> list[list[int]] | tuple[list[list[int]], SampleOutput]:
        """One output (data-token ids) per prompt; with ``return_trajectory`` also the per-token steps."""


@dataclass(frozen=True)
class ModelFamily:
    """One model family, as the library knows it.

    ``samplers(steps, greedy)`` gives the samplers the family is compared with, by name (the first is its
    default); ``options_class`` is the class of its sampler options (:class:`SamplerOptions` plus the
    family's fields). ``tiny`` are model options small enough for tests. How presets are derived for it
    (engine.presets) and how the star probes ask it (engine.star_probes) are the engine's business, keyed
    by ``id``."""

    id: str
    name: str
    model_class: type
    config_class: type
    options_class: type[SamplerOptions]
    samplers: Callable[[int, bool], dict[str, SamplerOptions]]
    capabilities: frozenset[str] = frozenset()
    tiny: dict = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.capabilities) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"model family {self.id!r}: unknown capabilities {sorted(unknown)}; "
                             f"known: {', '.join(CAPABILITIES)}")

    def can(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise KeyError(f"unknown capability {capability!r}")
        return capability in self.capabilities

    def sampler_options(self, choices: dict) -> SamplerOptions:
        """Its sampler options from ``choices`` (e.g. the command line's), keeping the ones it takes."""
        return self.options_class.from_choices(choices)
