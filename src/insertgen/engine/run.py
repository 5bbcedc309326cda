"""Loading a trained run: ``load_run(RUN_DIR)`` gives its model (EMA weights), task and config. The
run-directory format itself is :mod:`insertgen.core.rundir`."""

from __future__ import annotations

from pathlib import Path

import torch

from insertgen.core.checkpoint import (
    CHECKPOINT,
    check_checkpoint_identity,
    load_checkpoint,
    split_prefix,
)
from insertgen.core.errors import InsertgenError
from insertgen.core.rundir import read_config
from insertgen.core.threads import govern
from insertgen.engine.sampler_settings import resolve_sampler_options
from insertgen.models.registry import build_model
from insertgen.tasks import get_task


def model_from_config(config: dict):
    task = get_task(config["task"], config.get("task_options"))
    model = build_model(config["model"], task.vocab, config["model_config"])
    return task, model


def check_tensors(found: dict, expected: dict, path: Path) -> None:
    """Refuse a checkpoint whose tensors are not the model's: a missing or extra name, another shape, or another
    dtype (which loading would otherwise convert silently), each named in one line."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        what = (f"lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")) if missing else \
            (f"has {extra[0]}, which the model has not" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        raise InsertgenError(f"{path} does not match the run's config: it {what}")
    for name, tensor in found.items():
        want = expected[name]
        if tuple(tensor.shape) != tuple(want.shape) or tensor.dtype != want.dtype:
            raise InsertgenError(f"{path} does not match the run's config: {name} is {str(tensor.dtype)[6:]} "
                                 f"{tuple(tensor.shape)}, the model's {str(want.dtype)[6:]} {tuple(want.shape)}")


def load_run(run_dir, weights: str = "ema", device: str | torch.device = "cpu"):
    """The trained model of ``run_dir`` in eval mode with EMA weights (``weights="raw"`` for the raw ones).

    The model carries ``model.task`` (the task object), ``model.vocab``, ``model.run_dir``, ``model.run_config``,
    ``model.checkpoint_step`` (the training step its weights were saved at) and ``model.sampler_options``: the
    options ``insertgen eval`` samples it with (engine.sampler_settings; a shipped model's measured settings),
    for ``model.sample(prompts, model.sampler_options)``.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    task, model = model_from_config(config)
    task.run_dir = run_dir  # where a task that keeps its held-out examples in the run finds them
    tensors, state = load_checkpoint(run_dir / CHECKPOINT)
    check_checkpoint_identity(state, model, task.vocab, run_dir / CHECKPOINT)
    prefix = "ema" if weights == "ema" and any(k.startswith("ema.") for k in tensors) else "model"
    params = split_prefix(tensors, prefix)
    if prefix == "ema":  # EMA holds trainable parameters; buffers come from the raw state
        params = {**split_prefix(tensors, "model"), **params}
    check_tensors(params, model.state_dict(), run_dir / CHECKPOINT)
    model.load_state_dict(params, strict=True)
    model.task = task
    model.run_dir = run_dir
    model.run_config = config
    model.checkpoint_step = state.get("step")
    model.sampler_options = resolve_sampler_options(config, default_greedy=task.greedy_by_default)
    govern(model)  # an adaptive thread count follows the load while this model computes (threads.py)
    return model.to(device).eval()
