"""Named configurations: a task, a model and its options, and training options, sized for a 2-core CPU.

``star-easy-cpu``, ``star-medium-cpu`` and ``star-hard-cpu`` train FlexMDM; ``insertgen train --task T
--model M`` without ``--preset`` uses ``{T}-cpu`` when it exists and the defaults otherwise.
"""

from __future__ import annotations

from insertgen.errors import InsertgenError

_STAR_MODEL = {"d_model": 128, "n_layers": 4, "n_heads": 4, "time_weighting": "none"}

PRESETS: dict[str, dict] = {
    "star-easy-cpu": {
        "task": "star-easy",
        "model": "flexmdm",
        "model_config": dict(_STAR_MODEL),
        "train": {"steps": 3000, "batch_size": 128, "lr": 1e-3, "warmup_steps": 100, "lr_schedule": "constant",
                  "eval_every": 500, "checkpoint_every": 500},
    },
    "star-medium-cpu": {
        "task": "star-medium",
        "model": "flexmdm",
        "model_config": dict(_STAR_MODEL),
        "train": {"steps": 6000, "batch_size": 128, "lr": 1e-3, "warmup_steps": 100, "lr_schedule": "constant",
                  "eval_every": 1000, "checkpoint_every": 500},
    },
    "star-hard-cpu": {
        "task": "star-hard",
        "model": "flexmdm",
        "model_config": {"d_model": 192, "n_layers": 6, "n_heads": 6, "time_weighting": "none"},
        "train": {"steps": 10000, "batch_size": 64, "lr": 5e-4, "warmup_steps": 200, "lr_schedule": "constant",
                  "eval_every": 2000, "checkpoint_every": 500},
    },
}


def get_preset(name: str) -> dict:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise InsertgenError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in preset.items()}
