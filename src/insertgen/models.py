"""Model registry: model id -> (class, config class)."""

from __future__ import annotations

from insertgen.errors import InsertgenError
from insertgen.vocab import Vocab


def _registry():
    from insertgen.flex.loflexmdm import LoFlexMDM, LoFlexMDMConfig
    from insertgen.flex.model import FlexMDM, FlexMDMConfig
    from insertgen.ip.model import AOInsertionProcess, InsertionProcess, InsertionProcessConfig

    return {"flexmdm": (FlexMDM, FlexMDMConfig), "loflexmdm": (LoFlexMDM, LoFlexMDMConfig),
            "ip": (InsertionProcess, InsertionProcessConfig), "ao-ip": (AOInsertionProcess, InsertionProcessConfig)}


MODEL_IDS = ("flexmdm", "loflexmdm", "ip", "ao-ip")


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
