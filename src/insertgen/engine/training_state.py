"""A training run's checkpoint: what resuming needs (weights, EMA weights, the optimiser's state, the torch
RNG, the data order, the step) written into one safetensors file, and read back into a trainer.

Layout (core/checkpoint.py writes it atomically and keeps the previous file): tensors ``model.*``, ``ema.*``,
``optim.IDX.KEY`` (the optimiser's per-parameter tensors) and ``rng.torch``; the JSON state holds the step,
the data order, the EMA's update count, the optimiser's param groups and scalars, the seed, the model id,
the vocabulary's digest, the skipped non-finite steps, the world size and the gradient accumulation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from insertgen.core.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    check_checkpoint_identity,
    load_checkpoint,
    save_checkpoint,
    split_prefix,
    vocab_digest,
)
from insertgen.core.errors import InsertgenError


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The optimiser's state as tensors (``optim.IDX.KEY``) and JSON (param groups, scalar entries)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    """The inverse of :func:`optimizer_tensors`."""
    state: dict = {}
    for name, val in split_prefix(tensors, "optim").items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    for name, val in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(trainer) -> None:
    """Write ``trainer``'s checkpoint into its run directory (the caller is rank 0)."""
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in trainer.ema.shadow.items()})
    opt_tensors, opt_meta = optimizer_tensors(trainer.opt)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    state = {"step": trainer.step, "order": trainer.order.state_dict(), "ema_updates": trainer.ema.num_updates,
             "optimizer": opt_meta, "seed": trainer.seed, "model": trainer.model.model_id,
             "vocab": vocab_digest(trainer.task.vocab), "nonfinite_steps": trainer.nonfinite_steps,
             "world_size": trainer.world.world_size, "grad_accum": trainer.cfg.grad_accum}
    save_checkpoint(trainer.run_dir / CHECKPOINT, tensors, state)


def load_training_state(trainer, from_previous: bool = False) -> Path:
    """Load the checkpoint of ``trainer``'s run directory into it (``from_previous``: the one before it);
    returns the file read. A missing last checkpoint with a previous one beside it (a kill between the two
    renames of ``save_checkpoint``) falls back to the previous one, saying so; a corrupt, foreign or
    weights-only checkpoint is refused with InsertgenError before anything is changed."""
    run_dir = trainer.run_dir
    path = run_dir / (PREVIOUS if from_previous else CHECKPOINT)
    if not from_previous and not path.exists() and (run_dir / PREVIOUS).exists():
        path = run_dir / PREVIOUS
        print(f"{run_dir / CHECKPOINT} is missing; resuming from the previous checkpoint {path}")
    try:
        tensors, state = load_checkpoint(path)
    except InsertgenError as e:
        hint = (f"; `insertgen train --resume --from-previous` continues from {PREVIOUS} instead"
                if not from_previous and (run_dir / PREVIOUS).exists() else "")
        raise InsertgenError(f"{e}{hint}") from None
    if "optimizer" not in state:
        raise InsertgenError(f"{path} holds exported weights only (no optimiser or RNG "
                             "state), so training cannot resume from it; start a new run instead")
    check_checkpoint_identity(state, trainer.model, trainer.task.vocab, path)
    try:
        trainer.model.load_state_dict(split_prefix(tensors, "model"), strict=True)
    except RuntimeError as e:
        raise InsertgenError(f"checkpoint does not match the run's config: {str(e).splitlines()[0]}") from None
    for k, v in split_prefix(tensors, "ema").items():
        trainer.ema.shadow[k].copy_(v)
    trainer.ema.num_updates = state["ema_updates"]
    load_optimizer(trainer.opt, tensors, state["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    trainer.order.load_state_dict(state["order"])
    trainer.step = trainer.checkpoint_step = int(state["step"])
    trainer.nonfinite_steps = int(state.get("nonfinite_steps", 0))
    return path
