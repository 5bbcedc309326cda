"""Sampling shared by every model family: the options every sampler takes, what a sampler returns, and
token choice from logits (temperature, top-k, top-p (nucleus), greedy; special tokens excluded).

Each family's sampler extends :class:`SamplerOptions` with its own fields (FlexMDM / LoFlexMDM:
``models.flexmdm.sampler.TauLeapingOptions``; MDM: ``models.mdm.model.UnmaskingOptions``) and reads any
options it is given through ``TheirOptions.of(options)``. Every field is declared with :func:`option`, whose
help text and allowed values are the single declaration of that option: the command line's sampler flags
are generated from these dataclasses (``apps.sampler_flags``) and a run's settings are merged with the
flags in one place (``engine.sampler_settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

CONFIDENCE_MODES = ("top_prob", "prob_diff")


def option(default, help: str, choices: tuple[str, ...] | None = None, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False):
    """A sampler option: a dataclass field with its ``default``, the ``help`` text of its command-line flag
    and the values it allows (``choices``, or the range ``low`` .. ``high``, open at an end when asked)."""
    return field(default=default, metadata={"help": help, "choices": choices, "low": low, "high": high,
                                            "low_open": low_open, "high_open": high_open})


def option_range(f) -> str:
    """The allowed range of an :func:`option` field in words, e.g. ``in (0, 1]`` or ``>= 1``."""
    meta = f.metadata
    low, high = meta.get("low"), meta.get("high")
    if high is None:
        return f"{'>' if meta['low_open'] else '>='} {low:g}"
    if low is None:
        return f"{'<' if meta['high_open'] else '<='} {high:g}"
    return f"in {'(' if meta['low_open'] else '['}{low:g}, {high:g}{')' if meta['high_open'] else ']'}"


def check_option(f, value) -> None:
    """Raise ValueError naming the option unless ``value`` is allowed by the declaration of field ``f``
    (:func:`option`): one of its choices, or a number within its range; None only where the default is."""
    meta = f.metadata
    if value is None and f.default is None:
        return
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ValueError(f"{f.name} must be one of {', '.join(meta['choices'])}, not {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{f.name} must be a number, not {value!r}")
    if (low is not None and (value <= low if meta["low_open"] else value < low)) or \
            (high is not None and (value >= high if meta["high_open"] else value > high)):
        raise ValueError(f"{f.name} must be {option_range(f)}, not {value!r}")


@dataclass
class SamplerOptions:
    """What every sampler takes: how a token is chosen (``top_k`` 1 = greedy, ``top_p`` nucleus mass,
    ``temperature``) and ``confidence``: decide first where the model is surest (``top_prob``: the largest
    token probability; ``prob_diff``: the gap between the two largest), or None for the sampler's own order."""

    top_k: int | None = option(None, "Sample tokens from the top k (1 = greedy).", low=1)
    top_p: float | None = option(None, "Nucleus sampling mass.", low=0.0, high=1.0, low_open=True)
    temperature: float = option(1.0, "Divides the logits before tokens are drawn.", low=0.0, low_open=True)
    confidence: str | None = option(
        None, "Decide first where the model is surest: the most confident masked slots (FlexMDM, LoFlexMDM, MDM) "
        "or the insertion slot with the surest token (IP, AO-IP).", choices=CONFIDENCE_MODES)

    def __post_init__(self):
        """Every field checked against its declaration (:func:`option`): one of its ``choices``, or within its
        range; None only where the default is None."""
        for f in fields(self):
            check_option(f, getattr(self, f.name))

    @classmethod
    def option_fields(cls):
        """The dataclass fields of this class (each declared with :func:`option`)."""
        return fields(cls)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(cls, options: "SamplerOptions | None" = None, **changes):
        """``options`` as this class: the fields it shares with ``options`` taken from it, the others at their
        defaults, then ``changes``. ``None`` gives the defaults."""
        taken = {name: getattr(options, name) for name in cls.field_names() if hasattr(options, name)}
        return cls(**{**taken, **changes})

    @classmethod
    def from_choices(cls, choices: dict):
        """This class from a dict of choices (e.g. command-line options), keeping the keys it has; the
        rest (another family's options, e.g. ``order`` for IP) do not apply to this sampler."""
        return cls(**{k: v for k, v in choices.items() if k in cls.field_names()})


@dataclass
class SampleOutput:
    """What a sampler returns with ``return_trajectory``: the final canvases and, per token, when it
    appeared."""

    tokens: list[list[int]]  # final canvas of each sequence (PAD removed)
    insert_step: list[list[int]]  # per token of ``tokens``: step its mask was inserted (-1: initial canvas)
    unmask_step: list[list[int]]  # per token: step it was unmasked (-1: never masked)
    model_evals: list[int]  # model evaluations spent on each sequence
    forward_calls: int = 0  # batched forward passes
    terminated: list[bool] | None = None  # per sequence: stopped by itself, not by a length cap (IP)


def filter_logits(logits: Tensor, banned: Tensor | None = None, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Logits (..., V) with banned ids, tokens outside the top-k, and tokens outside the top-p nucleus
    (the smallest set of most likely tokens whose cumulative probability reaches p; the top token is
    always kept) set to -inf, divided by the temperature."""
    logits = logits.float()
    if banned is not None:
        logits = logits.masked_fill(banned, float("-inf"))
    if temperature != 1.0:
        if temperature <= 0:
            raise ValueError("temperature must be positive (use top_k=1 for greedy)")
        logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly more likely tokens
        drop_sorted = before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_from_logits(logits: Tensor, generator: torch.Generator | None = None, **options) -> Tensor:
    """Draw one token per row of ``logits`` (..., V) after :func:`filter_logits` (Gumbel-max)."""
    logits = filter_logits(logits, **options)
    if options.get("top_k") == 1:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-20, 1.0)
    return (logits - torch.log(-torch.log(u))).argmax(-1)


def confidence_scores(probs: Tensor, mode: str) -> Tensor:
    """Per position, how sure the model is of its token: ``top_prob`` = max_v p(v), ``prob_diff`` = the
    gap between the two most likely tokens. ``probs`` (..., V) -> (...)."""
    top2 = torch.topk(probs, 2, dim=-1).values
    return top2[..., 0] if mode == "top_prob" else top2[..., 0] - top2[..., 1]
