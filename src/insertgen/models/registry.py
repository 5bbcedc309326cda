"""The model families by id: ``register`` one, ``get_family(id)``, ``build_model(id, vocab, options)``.

The built-in families are registered here, in the order the comparison tables show them. A new family
registers itself with one :func:`register` call (its own folder holds the model, config and sampler).
"""

from __future__ import annotations

import dataclasses

from insertgen.core.errors import InsertgenError
from insertgen.core.plugins import MODELS_GROUP, load_entry_points
from insertgen.core.sampling import SamplerOptions
from insertgen.core.vocab import Vocab
from insertgen.models.arm.model import ARM, ARMConfig
from insertgen.models.family import ModelFamily
from insertgen.models.flexmdm.model import FlexMDM, FlexMDMConfig
from insertgen.models.flexmdm.sampler import TauLeapingOptions
from insertgen.models.ip.model import (
    AOInsertionProcess,
    InsertionProcess,
    InsertionProcessConfig,
)
from insertgen.models.loflexmdm.model import LoFlexMDM, LoFlexMDMConfig
from insertgen.models.mdm.model import MDM, MDMConfig, UnmaskingOptions

FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to the registry (its id must be new)."""
    if family.id in FAMILIES:
        raise ValueError(f"model family {family.id!r} is already registered")
    FAMILIES[family.id] = family
    return family


register_family = register  # the name insertgen exports


def _load_plugins() -> None:
    """Register the families of other installed packages (core/plugins.py): an entry point of group
    ``insertgen.models`` is a ModelFamily, or a function that registers families."""
    for name, obj in load_entry_points(MODELS_GROUP).items():
        if isinstance(obj, ModelFamily):
            if FAMILIES.get(obj.id) is not obj:
                register(obj)
        elif callable(obj):
            obj()
        else:
            raise InsertgenError(f"the {MODELS_GROUP} entry point {name!r} is neither a ModelFamily nor a function")


def unregister(model_id: str) -> None:
    """Remove a family (tests that register a toy family clean up with this)."""
    FAMILIES.pop(model_id, None)


def model_ids() -> tuple[str, ...]:
    """Every registered model id (the built-in ones in the tables' order, then installed plugins')."""
    _load_plugins()
    return tuple(FAMILIES)


def get_family(model_id: str) -> ModelFamily:
    if model_id not in FAMILIES:
        _load_plugins()
    try:
        return FAMILIES[model_id]
    except KeyError:
        raise InsertgenError(f"unknown model {model_id!r}; known models: {', '.join(FAMILIES)}") from None


def family_of(model) -> ModelFamily:
    """The family of a built model (its ``model_id``)."""
    return get_family(model.model_id)


def task_defaults(model_id: str, task) -> dict:
    """Options a model takes from its task unless given: the buffer ``max_len`` (prompt block + target
    block + BOS + EOS) and, for models with a fixed canvas, its ``target_len``."""
    family = FAMILIES.get(model_id)
    fields = {f.name for f in dataclasses.fields(family.config_class)} if family else set()
    defaults = {"max_len": task.buffer_len, "target_len": task.target_block}
    return {k: v for k, v in defaults.items() if k in fields}


def build_model(model_id: str, vocab: Vocab, config: dict):
    """Instantiate model ``model_id`` with the options in ``config``; unknown ids/options raise InsertgenError."""
    family = get_family(model_id)
    try:
        cfg = family.config_class.from_dict(config)
    except (ValueError, TypeError) as e:
        raise InsertgenError(f"bad option for model {model_id!r}: {e}") from None
    return family.model_class(vocab, cfg)


# ----- the built-in families -----

def _greedy(greedy: bool) -> int | None:
    return 1 if greedy else None


def _tau_leaping(steps: int, greedy: bool) -> dict[str, SamplerOptions]:
    """Both tau-leaping orders: insert and unmask together, or every insertion first."""
    return {order: TauLeapingOptions(steps=steps, top_k=_greedy(greedy), order=order)
            for order in ("joint", "insert_first")}


_BACKBONE_TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2}

register(ModelFamily(
    "flexmdm", "FlexMDM", FlexMDM, FlexMDMConfig, TauLeapingOptions, _tau_leaping,
    capabilities=frozenset({"trajectory", "score"}), tiny=_BACKBONE_TINY))
register(ModelFamily(
    "loflexmdm", "LoFlexMDM", LoFlexMDM, LoFlexMDMConfig, TauLeapingOptions, _tau_leaping,
    capabilities=frozenset({"trajectory", "score", "schedule_profile", "lr_scales"}),
    tiny={**_BACKBONE_TINY, "aux_d_model": 16, "aux_n_layers": 1, "aux_n_heads": 2}))
register(ModelFamily(
    "ao-ip", "AO-IP", AOInsertionProcess, InsertionProcessConfig, SamplerOptions,
    lambda steps, greedy: {"ancestral": SamplerOptions(top_k=_greedy(greedy))},
    capabilities=frozenset({"trajectory", "score", "lr_scales", "training_step"}), tiny=_BACKBONE_TINY))
register(ModelFamily(
    "ip", "IP", InsertionProcess, InsertionProcessConfig, SamplerOptions,
    lambda steps, greedy: {"ancestral": SamplerOptions(top_k=_greedy(greedy))},
    capabilities=frozenset({"trajectory", "score", "posterior_orders", "lr_scales", "training_step"}),
    tiny={**_BACKBONE_TINY, "posterior_d_model": 16, "posterior_n_layers": 1, "posterior_n_heads": 2}))
register(ModelFamily(
    "arm", "ARM", ARM, ARMConfig, SamplerOptions,
    lambda steps, greedy: {"left_to_right": SamplerOptions(top_k=_greedy(greedy))},
    capabilities=frozenset({"score"}), tiny=_BACKBONE_TINY))
register(ModelFamily(
    "mdm", "MDM", MDM, MDMConfig, UnmaskingOptions,
    lambda steps, greedy: {"random": UnmaskingOptions(steps=steps, top_k=_greedy(greedy)),
                           "top_prob": UnmaskingOptions(steps=steps, top_k=_greedy(greedy), confidence="top_prob")},
    capabilities=frozenset({"score"}), tiny=_BACKBONE_TINY))
