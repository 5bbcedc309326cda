"""Data-parallel training across the processes that ``torchrun`` starts (torch.distributed).

    torchrun --standalone --nproc_per_node=N -m insertgen.apps.cli train ...            # one machine
    torchrun --nnodes=M --nproc_per_node=N --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:PORT -m insertgen.apps.cli train ...                    # M machines

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_world` joins the process group
(NCCL when the process has a CUDA device, gloo otherwise). The optimiser step of a data-parallel run is
the step of one process on the whole global batch, split into ``world_size x grad_accum`` micro-batches:

    g = (1 / (W M)) sum_{r < W} sum_{m < M} grad loss(micro-batch (r, m))

Each rank accumulates its M micro-batch gradients, then one flat ``all_reduce`` sums them over ranks;
every rank then clips, steps and updates its EMA identically, so the parameters stay equal on all ranks
without broadcasts. Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from insertgen.core.errors import InsertgenError


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_world(device: str | None = None) -> tuple[World, torch.device]:
    """Join the process group that torchrun describes in the environment (nothing to do outside torchrun)
    and pick this rank's device: ``cuda:LOCAL_RANK`` when CUDA is available (unless ``device`` is given),
    else the CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank, world_size, local_rank), device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_reduce_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Average ``p.grad`` over ranks with one flat all-reduce (a missing gradient counts as zeros, so every
    rank reduces the same buffer)."""
    if not world.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p)  # views into the reduced buffer: no copy
        offset += n


def all_reduce_floats(values: dict[str, float], world: World) -> dict[str, float]:
    """``values`` averaged over ranks; every rank passes the same keys."""
    if not world.distributed:
        return values
    keys = sorted(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    buf = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(buf)
    buf /= world.world_size
    return dict(zip(keys, buf.tolist()))


def check_same_on_every_rank(value: str, what: str, world: World) -> None:
    """Refuse to train when ranks disagree on ``value`` (e.g. a run directory or a config digest)."""
    if not world.distributed:
        return
    gathered: list = [None] * world.world_size
    dist.all_gather_object(gathered, value)
    if len(set(gathered)) > 1:
        raise InsertgenError(f"the ranks disagree on {what}: {gathered}")


def micro_batch_seed(seed: int, step: int, micro_batch: int) -> int:
    """The noise seed of global micro-batch ``micro_batch`` (= rank x grad_accum + m) at optimiser step
    ``step``: a hash of the three, so the noise depends neither on how the batch is split over processes
    nor on where a run was interrupted."""
    return int(np.random.SeedSequence([seed, step, micro_batch]).generate_state(1, np.uint64)[0] >> 1)
