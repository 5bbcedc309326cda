"""Named configurations: a task, a model and its options, and training options, sized for a 2-core CPU.

``insertgen train --task T --model M`` without ``--preset`` uses ``{T}-cpu`` when it exists (its model
options only when its model is M). What the presets reach here is in docs/results.md.
"""

from __future__ import annotations

from insertgen.errors import InsertgenError


def _star(d_model: int, n_layers: int, n_heads: int, lr: float, steps: int, eval_every: int) -> dict:
    return {
        "model": "flexmdm",
        "model_config": {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "time_weighting": "none"},
        "train": {"steps": steps, "batch_size": 64, "lr": lr, "warmup_steps": 100, "lr_schedule": "constant",
                  "ema_decay": 0.999, "eval_every": eval_every, "checkpoint_every": 500},
    }


PRESETS: dict[str, dict] = {
    "star-easy-cpu": {"task": "star-easy", **_star(64, 4, 2, 2e-3, 30_000, 5_000)},
    "star-medium-cpu": {"task": "star-medium", **_star(128, 4, 4, 2e-3, 30_000, 5_000)},
    "star-hard-cpu": {"task": "star-hard", **_star(192, 6, 6, 5e-4, 60_000, 10_000)},
}


def get_preset(name: str) -> dict:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise InsertgenError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in preset.items()}
