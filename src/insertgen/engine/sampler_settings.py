"""The sampler options a run is sampled with: one resolver for every command, the demo and the Python API.

A run's options are merged in layers, each replacing the one before (highest last):

1. the family's sampler defaults (its options dataclass, e.g. ``TauLeapingOptions``);
2. the run's evaluation settings (``train.eval_sampler``, e.g. ``{"steps": 64, "order": "joint"}``), which
   a trained run's validation used;
3. the run's ``sampler_defaults``: the settings its documented figures were measured with (a shipped model,
   written by scripts/ship_pretrained.py; or a preset's token drawing, e.g. ``{"temperature": 0.5}``);
4. the choices given (command-line flags, keyword arguments); ``None`` means "not given".

Token choice is one group: a ``top_k`` or ``top_p`` given replaces both of the layers below; ``greedy``
True is ``top_k = 1``; ``greedy`` False drops a ``top_k = 1`` of the layers below (tokens drawn from the
model instead); ``greedy`` not given is ``top_k = 1`` when ``default_greedy`` and no layer names a top-k or
top-p. Options the family's sampler does not take (``order`` for IP) do not apply.
"""

from __future__ import annotations

import dataclasses

from insertgen.core.errors import InsertgenError
from insertgen.core.sampling import SamplerOptions, check_option
from insertgen.models.registry import FAMILIES, get_family

DRAWING_KEYS = ("temperature", "top_k", "top_p")  # how tokens are drawn, whichever sampler decides the order
EVAL_SAMPLER = {"steps": 64, "order": "joint"}  # a run's evaluation settings unless its config names others


def option_fields() -> dict[str, dataclasses.Field]:
    """Every sampler option of the registered families by name (the first declaration of a shared name),
    in declaration order: what the command line offers as flags."""
    out: dict[str, dataclasses.Field] = {}
    for family in FAMILIES.values():
        for f in dataclasses.fields(family.options_class):
            out.setdefault(f.name, f)
    return out


def check_sampler_choices(choices: dict, what: str) -> None:
    """Raise ValueError naming ``what`` unless every key of ``choices`` is a sampler option of some family
    and its value is allowed by that option's declaration."""
    if not isinstance(choices, dict):
        raise ValueError(f"{what} must be a mapping of sampler options, not {choices!r}")
    known = option_fields()
    unknown = sorted(set(choices) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown sampler option(s) {unknown}; known: {', '.join(known)}")
    for name, value in choices.items():
        try:
            check_option(known[name], value)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None


LEGACY_EVAL_KEYS = {"eval_sampler_steps": "steps", "eval_sampler_order": "order"}  # runs made before eval_sampler


def eval_sampler_of(train: dict) -> dict:
    """The evaluation sampler settings of a training config (``train.eval_sampler`` over the defaults; the
    ``eval_sampler_steps`` / ``eval_sampler_order`` of runs made before it existed go into it)."""
    legacy = {name: train[key] for key, name in LEGACY_EVAL_KEYS.items() if key in train}
    return {**EVAL_SAMPLER, **train.get("eval_sampler", {}), **legacy}


def evaluation_settings(run_config: dict) -> dict:
    """Layer 2: the sampler settings of the run's own evaluation during training (:func:`eval_sampler_of`)."""
    return eval_sampler_of(run_config.get("train", {}))


def resolve_sampler_options(run_config: dict | None, default_greedy: bool = False, greedy: bool | None = None,
                            **given) -> SamplerOptions:
    """The sampler options of the run whose config.json is ``run_config`` (its ``model`` names the family;
    without one, the options every sampler takes), merged as the module docstring says from the choices
    ``given`` (e.g. ``steps=256``, ``temperature=0.7``; None = not given) and ``greedy``. A bad choice
    raises InsertgenError naming it."""
    run_config = run_config or {}
    known = option_fields()
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InsertgenError(f"unknown sampler option(s) {unknown}; known: {', '.join(known)}")
    given = {k: v for k, v in given.items() if v is not None}
    shipped = dict(run_config.get("sampler_defaults", {}))
    if "demo_sampler" in run_config and "model" in run_config:  # a model shipped before 2026-12-07 named its sampler
        named = get_family(run_config["model"]).samplers(2, False).get(run_config["demo_sampler"])
        shipped = {**(_own_choices(named) if named is not None else {}), **shipped}
    values = {**evaluation_settings(run_config), **shipped, **given}
    if "top_k" in given or "top_p" in given:
        values["top_k"], values["top_p"] = given.get("top_k"), given.get("top_p")
    if greedy is True:
        values["top_k"], values["top_p"] = 1, None
    elif greedy is False:
        if values.get("top_k") == 1:
            values["top_k"] = None
    elif default_greedy and values.get("top_k") is None and values.get("top_p") is None:
        values["top_k"] = 1
    options_class = get_family(run_config["model"]).options_class if "model" in run_config else SamplerOptions
    try:
        return options_class.from_choices(values)
    except (TypeError, ValueError) as e:
        raise InsertgenError(f"bad sampler option: {e}") from None


def with_drawing_defaults(options: SamplerOptions, run_config: dict | None) -> SamplerOptions:
    """``options`` with the temperature / top-k / top-p of the run's ``sampler_defaults`` (a preset's or a
    shipped model's measured token drawing), unless ``options`` are greedy (top-k 1): the grid compares a
    family's samplers, each drawing tokens as the run was measured."""
    drawing = {k: v for k, v in (run_config or {}).get("sampler_defaults", {}).items() if k in DRAWING_KEYS}
    if options.top_k == 1 or not drawing:
        return options
    return dataclasses.replace(options, **drawing)


def _own_choices(candidate: SamplerOptions) -> dict:
    """What makes a family sampler itself: the fields it sets away from its class's defaults, other than
    its steps and token drawing (``order="insert_first"``; MDM's ``confidence="top_prob"``)."""
    defaults = type(candidate)()
    return {f.name: getattr(candidate, f.name) for f in dataclasses.fields(candidate)
            if f.name not in ("steps", *DRAWING_KEYS) and getattr(candidate, f.name) != getattr(defaults, f.name)}


def sampler_name(model_id: str, options: SamplerOptions) -> str:
    """The name of the family's sampler (``ModelFamily.samplers``) that ``options`` are a setting of: the
    most specific one whose own choices ``options`` keep, e.g. ``top_prob`` for an MDM that unmasks by
    confidence, ``joint`` for FlexMDM's tau-leaping with any grid."""
    samplers = get_family(model_id).samplers(2, False)
    best, best_size = next(iter(samplers)), -1
    for name, candidate in samplers.items():
        own = _own_choices(candidate)
        if all(getattr(options, k, None) == v for k, v in own.items()) and len(own) > best_size:
            best, best_size = name, len(own)
    return best


def as_named_sampler(model_id: str, options: SamplerOptions, name: str) -> SamplerOptions:
    """``options`` turned into the family's sampler ``name`` (its own choices set, the rest kept)."""
    samplers = get_family(model_id).samplers(2, False)
    if name not in samplers:
        raise InsertgenError(f"{model_id} has no sampler {name!r}; its samplers: {', '.join(samplers)}")
    return dataclasses.replace(options, **_own_choices(samplers[name]))


def shipped_settings(options: SamplerOptions) -> dict:
    """What a shipped run's ``sampler_defaults`` hold: every field of ``options``, so that
    :func:`resolve_sampler_options` gives them back whatever the run's evaluation settings and whatever
    later becomes a sampler's default."""
    return dataclasses.asdict(options)
