"""Model registry: model id -> (class, config class)."""

from __future__ import annotations

from insertgen.errors import InsertgenError
from insertgen.vocab import Vocab


def _registry():
    from insertgen.baselines.arm import ARM, ARMConfig
    from insertgen.baselines.mdm import MDM, MDMConfig
    from insertgen.flex.loflexmdm import LoFlexMDM, LoFlexMDMConfig
    from insertgen.flex.model import FlexMDM, FlexMDMConfig
    from insertgen.ip.model import AOInsertionProcess, InsertionProcess, InsertionProcessConfig

    return {"flexmdm": (FlexMDM, FlexMDMConfig), "loflexmdm": (LoFlexMDM, LoFlexMDMConfig),
            "ip": (InsertionProcess, InsertionProcessConfig), "ao-ip": (AOInsertionProcess, InsertionProcessConfig),
            "arm": (ARM, ARMConfig), "mdm": (MDM, MDMConfig)}


MODEL_IDS = ("flexmdm", "loflexmdm", "ip", "ao-ip", "arm", "mdm")


def task_defaults(model_id: str, task) -> dict:
    """Options a model takes from its task unless given: the buffer ``max_len`` (prompt block + target
    block + BOS + EOS) and, for models with a fixed canvas, its ``target_len``."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(_registry()[model_id][1])} if model_id in _registry() else set()
    defaults = {"max_len": task.buffer_len, "target_len": task.target_block}
    return {k: v for k, v in defaults.items() if k in fields}


def build_model(model_id: str, vocab: Vocab, config: dict):
    """Instantiate model ``model_id`` with the options in ``config``; unknown ids/options raise InsertgenError."""
    registry = _registry()
    if model_id not in registry:
        raise InsertgenError(f"unknown model {model_id!r}; known models: {', '.join(sorted(registry))}")
    cls, config_cls = registry[model_id]
    try:
        cfg = config_cls.from_dict(config)
    except (ValueError, TypeError) as e:
        raise InsertgenError(f"bad option for model {model_id!r}: {e}") from None
    return cls(vocab, cfg)
