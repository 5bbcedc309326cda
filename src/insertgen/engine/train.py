"""Training loop: AdamW (decay / no-decay groups), warm-up then constant or cosine LR, gradient
clipping, EMA, periodic validation, atomic checkpoints and exact resume.

The learning rate at step s (0-based) with peak ``lr``, warm-up W and total S steps:

    lr(s) = lr (s + 1) / W                                     for s < W
          = lr                                                 (constant)
          = min_lr + (lr - min_lr) (1 + cos(pi (s - W) / (S - W))) / 2     (cosine)

Exact resume: the checkpoint holds parameters, EMA, optimiser moments, the global torch RNG state and
the data order's (epoch, cursor) (with ``fresh_data`` each batch is a function of (seed, step)); the noise of each micro-batch is seeded from (seed, step, micro-batch)
(distributed.micro_batch_seed), so resuming replays nothing and reproduces the uninterrupted run bit for
bit, whatever moment the run was killed at.

One optimiser step consumes a global batch of ``batch_size`` examples split into ``world_size x
grad_accum`` equal micro-batches (torchrun ranks x accumulation steps; distributed.py); the gradient is
the mean of the micro-batch gradients, so a run's trajectory does not depend on how many processes share
it (up to float summation order).

A non-finite loss or gradient norm stops the run with the last good checkpoint untouched
(``on_nonfinite="stop"``), or skips that step's update (``"skip"``: the batch is consumed, parameters,
optimiser and EMA are left as they were) until ``max_nonfinite_skips`` steps in a row have failed.

Memory: batches of varying length leave the allocator's heap with free pages between the blocks still in
use, which stay resident; every ``RELEASE_EVERY_S`` seconds of training (at a logging step) and after every
evaluation those pages go back to the system, and an evaluation's large blocks are mapped apart from that
heap so that it does not grow it (core/memory.py); so a long run's resident size follows what it holds rather
than the largest batch it has met (the soak benchmark, docs/results.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from insertgen.core.data import (
    Batch,
    BatchOrder,
    FreshBatches,
    collate,
    micro_batch_indices,
)
from insertgen.core.distributed import (
    World,
    all_reduce_floats,
    all_reduce_gradients,
    micro_batch_seed,
)
from insertgen.core.ema import EMA
from insertgen.core.errors import InsertgenError
from insertgen.core.io import to_json, write_text_atomic, writing
from insertgen.core.memory import blocks_mapped_apart, release_freed_memory
from insertgen.core.options import from_dict
from insertgen.core.rundir import METRICS, metrics_records
from insertgen.engine.evaluate import evaluate_model
from insertgen.engine.plots import plot_training
from insertgen.engine.sampler_settings import EVAL_SAMPLER, LEGACY_EVAL_KEYS, check_sampler_choices, eval_sampler_of
from insertgen.engine.training_state import load_training_state, save_training_state
from insertgen.models.registry import family_of
from insertgen.nn.transformer import Transformer

RELEASE_EVERY_S = 60.0  # seconds of training between two releases of the heap's free pages


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    lr_schedule: str = "constant"  # "constant" or "cosine"
    min_lr: float = 1e-5
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    eval_every: int = 500  # 0 disables periodic validation
    eval_examples: int = 100
    # the sampler options of validation during training and the run's evaluation settings for sample / eval
    # (engine.sampler_settings, layer 2); any sampler option by name; options a family's sampler does not take
    # do not apply to it
    eval_sampler: dict = field(default_factory=lambda: dict(EVAL_SAMPLER))
    checkpoint_every: int = 500
    log_every: int = 20
    time_budget_s: float | None = None  # stop (with a checkpoint) once training has run this long
    init_from: str | None = None  # warm start: a run directory whose (EMA) weights seed the matching parameters
    init_map_tokens: bool = False  # warm start from another vocabulary: token rows copied by name (warm_start)
    init_rename: str | None = None  # warm start from another family: "SRC:DST[,SRC:DST]" name prefixes (warm_start)
    grad_accum: int = 1  # micro-batches per rank and step (batch_size is the global batch of one step)
    on_nonfinite: str = "stop"  # non-finite loss / gradient: "stop" (keep the last good checkpoint) or "skip"
    max_nonfinite_skips: int = 10  # with "skip": stop after this many failed steps in a row
    compile: bool = False  # torch.compile the Transformer trunks (dynamic shapes); see compile_trunks
    bucket_batches: int = 0  # > 1: length bucketing over windows of this many batches (data.BatchOrder)
    fresh_data: bool = False  # draw every batch anew from the task's generator (data.FreshBatches)
    curriculum_task: str | None = None  # a smaller task over the same vocabulary trained on first (fresh data)
    curriculum_steps: int = 0  # the first this many steps draw their batches from curriculum_task

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {self.lr_schedule!r}")
        if min(self.steps, self.batch_size, self.checkpoint_every, self.log_every, self.eval_examples) < 1:
            raise ValueError("steps, batch_size, checkpoint_every, log_every and eval_examples must be positive")
        if self.eval_every < 0 or self.warmup_steps < 0 or self.lr <= 0 or self.grad_clip <= 0:
            raise ValueError("eval_every and warmup_steps must be >= 0; lr and grad_clip > 0")
        check_sampler_choices(self.eval_sampler, "eval_sampler")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.grad_accum < 1 or self.batch_size % self.grad_accum:
            raise ValueError(f"grad_accum must be a positive divisor of batch_size ({self.batch_size}), "
                             f"not {self.grad_accum}")
        if self.on_nonfinite not in ("stop", "skip") or self.max_nonfinite_skips < 1:
            raise ValueError("on_nonfinite must be 'stop' or 'skip' and max_nonfinite_skips >= 1")
        if (self.curriculum_task is None) != (self.curriculum_steps == 0) or self.curriculum_steps < 0:
            raise ValueError("curriculum_task and curriculum_steps go together: a task id and a positive number "
                             "of steps (or neither)")
        if self.curriculum_task is not None and not self.fresh_data:
            raise ValueError("curriculum_task draws its graphs fresh from the generator: set fresh_data=true too")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From a config.json's ``train`` (or a preset's); the ``eval_sampler_steps`` / ``eval_sampler_order``
        of runs made before ``eval_sampler`` existed go into it."""
        if any(key in d for key in LEGACY_EVAL_KEYS):
            d = {k: v for k, v in d.items() if k not in LEGACY_EVAL_KEYS} | {"eval_sampler": eval_sampler_of(d)}
        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def compile_trunks(model: torch.nn.Module) -> int:
    """``torch.compile`` (in place, dynamic shapes: batches differ in length) every Transformer trunk of
    ``model``: the generator / decoder and the auxiliary / posterior networks. Parameter names and
    checkpoints are unchanged. Returns the number of trunks compiled."""

    trunks = [m for m in model.modules() if isinstance(m, Transformer)]
    for trunk in trunks:
        trunk.compile(dynamic=True)
    return len(trunks)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Matrices decay; biases, norm scales and other vectors do not. A model with an
    ``lr_scales()`` -> {parameter-name prefix: factor} method (capability ``lr_scales``) gets one pair of groups per prefix (the
    rest in the first pair), each group's learning rate being ``factor * lr(step)``."""
    scales = model.lr_scales() if family_of(model).can("lr_scales") else {}
    buckets: dict[str, tuple[list, list]] = {"": ([], [])}
    for prefix in scales:
        buckets[prefix] = ([], [])
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        prefix = next((k for k in scales if name.startswith(k)), "")
        decay, no_decay = buckets[prefix]
        (decay if p.ndim >= 2 and "norm" not in name else no_decay).append(p)
    groups = []
    for prefix, (decay, no_decay) in buckets.items():
        scale = scales.get(prefix, 1.0)
        groups.append({"params": decay, "weight_decay": weight_decay, "lr_scale": scale})
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr_scale": scale})
    return [g for g in groups if g["params"]]


def clip_gradients(model: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the gradient norm of each network of the model on its own: the parameters under each
    ``lr_scales()`` prefix (auxiliary / posterior network) and the rest, so that one network's gradient
    spike cannot shrink the other's update. Returns the total norm before clipping."""
    scales = model.lr_scales() if family_of(model).can("lr_scales") else {}
    parts: dict[str, list] = {"": []}
    for prefix in scales:
        parts[prefix] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            parts[next((k for k in scales if name.startswith(k)), "")].append(p)
    norms = [torch.nn.utils.clip_grad_norm_(params, max_norm) for params in parts.values() if params]
    return torch.linalg.vector_norm(torch.stack(norms))


class Trainer:
    """Trains ``model`` on ``task`` into ``run_dir`` (which already holds config.json).

    Under torchrun every rank builds the same Trainer (``world``); rank 0 alone writes the run directory.
    """

    def __init__(self, run_dir: Path, task, model, cfg: TrainConfig, seed: int, device="cpu",
                 world: World | None = None, curriculum=None):
        self.run_dir, self.task, self.model, self.cfg, self.seed = Path(run_dir), task, model, cfg, seed
        self.world = world or World()
        self.parts = self.world.world_size * cfg.grad_accum
        if cfg.batch_size % self.parts:
            raise InsertgenError(f"batch_size {cfg.batch_size} (the global batch) does not split into "
                                 f"{self.world.world_size} ranks x {cfg.grad_accum} accumulation steps")
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.model.to(self.device).train()
        if cfg.compile:
            compile_trunks(self.model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
        self.ema = EMA(model, cfg.ema_decay)
        self.noise_gen = torch.Generator(device=self.device)
        train = task.examples("train")
        self.buffer_len = task.buffer_len
        self.data_tokens = self.data_fixed = None  # the training split as tensors; not needed with fresh data
        if not cfg.fresh_data:
            full = collate(train, task.vocab, self.buffer_len, prompt_in_target=task.prompt_in_target)
            self.data_tokens, self.data_fixed = full.tokens, full.fixed
        lengths = (self.data_tokens != task.vocab.pad_id).sum(1).numpy() \
            if cfg.bucket_batches > 1 and self.data_tokens is not None else None
        self.order = BatchOrder(len(train), cfg.batch_size, seed, lengths, cfg.bucket_batches)
        try:
            self.fresh = FreshBatches(task, cfg.batch_size, seed) if cfg.fresh_data else None
            # the first curriculum_steps batches come from the smaller task (training_run.curriculum_rung)
            self.curriculum = FreshBatches(curriculum, cfg.batch_size, seed) if curriculum is not None else None
        except ValueError as e:
            raise InsertgenError(f"train.fresh_data: {e}") from None
        if cfg.curriculum_task is not None and curriculum is None:
            raise InsertgenError("train.curriculum_task is set but no curriculum task was given to the trainer")
        self.step = 0
        self.checkpoint_step: int | None = None  # step of the last checkpoint written or resumed from
        self.nonfinite_steps = 0  # steps skipped so far (on_nonfinite="skip")

    # ----- checkpoints (engine/training_state.py) -----
    def save(self) -> None:
        """Write the checkpoint (rank 0; every rank records the step, for its messages)."""
        if self.world.is_main:
            save_training_state(self)
        self.checkpoint_step = self.step

    def resume(self, from_previous: bool = False) -> None:
        """Load the run's checkpoint (``from_previous``: the one before it, kept by save_checkpoint) and drop
        the metrics logged after it, which the resumed run is about to log again."""
        load_training_state(self, from_previous)
        if self.world.is_main:
            self._truncate_metrics(self.step)

    def restart(self) -> None:
        """Begin a run that was stopped before its first checkpoint again: the step-0 state is a function
        of the seed, so only the metrics it logged have to go."""
        self.step, self.checkpoint_step = 0, None
        if self.world.is_main:
            self._truncate_metrics(0)

    def _truncate_metrics(self, step: int) -> None:
        """Rewrite metrics.jsonl without the records of steps after ``step`` (atomically). A line that is not
        a JSON object (the half-written last line of a process killed mid-write, or damage) is dropped with a
        warning naming it."""
        path = self.run_dir / METRICS
        if not path.is_file():
            return
        kept = [line for line, record in metrics_records(path) if record.get("step", 0) <= step]
        write_text_atomic(path, "".join(line + "\n" for line in kept))

    # ----- loop -----
    def _log(self, record: dict) -> None:
        if self.world.is_main:
            with writing(self.run_dir / METRICS, "metrics"):  # half a line at worst: resume drops it
                with open(self.run_dir / METRICS, "a") as f:
                    f.write(to_json(record) + "\n")

    def validate(self) -> dict:
        examples = self.task.examples("validation")[: self.cfg.eval_examples]
        self.model.eval()
        with self.ema.applied(self.model), blocks_mapped_apart():  # not growing the steps' heap (core/memory.py)
            metrics, _ = evaluate_model(self.model, self.task, examples,
                                        family_of(self.model).sampler_options(dict(
                                            self.cfg.eval_sampler, top_k=1 if self.task.greedy_by_default else None)),
                                        seed=0)
        self.model.train()
        return metrics

    def _gradient_step(self) -> tuple[float, dict, torch.Tensor]:
        """Accumulate this rank's micro-batch gradients of the next global batch and average them over
        ranks. Returns (mean loss, mean stats with summed ``tokens``, total gradient norm before clipping),
        identical on every rank."""
        if self.fresh is not None:
            source = self.curriculum if self.curriculum is not None and self.step < self.cfg.curriculum_steps \
                else self.fresh
            fresh = collate(source.examples(self.step), self.task.vocab, self.buffer_len,
                            prompt_in_target=self.task.prompt_in_target)
            raw, fixed_all = fresh.tokens, fresh.fixed
        else:
            batch_idx = torch.from_numpy(self.order.next())
            raw, fixed_all = self.data_tokens[batch_idx], self.data_fixed[batch_idx]
        tokens_all = self.task.augment(raw, (self.seed, self.step), fixed_all)
        positions = np.arange(len(raw))
        accum = self.cfg.grad_accum
        if family_of(self.model).can("training_step"):  # a model whose loss changes with the step
            self.model.set_training_step(self.step)
        self.opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for m in range(accum):
            part = self.world.rank * accum + m
            rows = torch.from_numpy(micro_batch_indices(positions, part, self.parts))
            tokens, fixed = tokens_all[rows], fixed_all[rows]
            width = int((tokens != self.task.vocab.pad_id).sum(1).max())  # trim common padding
            batch = Batch(tokens[:, :width], fixed[:, :width]).to(self.device)
            self.noise_gen.manual_seed(micro_batch_seed(self.seed, self.step, part))
            loss, stats = self.model.loss(batch, self.noise_gen)
            (loss / accum if accum > 1 else loss).backward()
            for key, value in {"loss": float(loss.detach()), **stats}.items():
                totals[key] = totals.get(key, 0.0) + float(value) / accum
        all_reduce_gradients(self.params, self.world)
        totals = all_reduce_floats(totals, self.world)
        if "tokens" in totals:  # a count: summed over micro-batches and ranks
            totals["tokens"] *= accum * self.world.world_size
        grad_norm = clip_gradients(self.model, self.cfg.grad_clip)
        return totals.pop("loss"), totals, grad_norm

    def train_step(self) -> tuple[float, float, dict, torch.Tensor, bool]:
        """One optimisation step at the current step's learning rate: the gradients of the next global
        batch, then the optimizer and EMA updates when loss and gradients are finite. Returns
        ``(lr, loss, stats, grad_norm, finite)``; ``self.step`` is not advanced (``train`` does that)."""
        lr = learning_rate(self.cfg, self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss, stats, grad_norm = self._gradient_step()
        finite = math.isfinite(loss) and bool(torch.isfinite(grad_norm))
        if finite:
            self.opt.step()
            self.ema.update(self.model)
        return lr, loss, stats, grad_norm, finite

    def _nonfinite(self, loss: float, bar) -> None:
        """Stop, or count a skipped step, after a non-finite loss or gradient norm."""
        where = (f"the last good checkpoint (step {self.checkpoint_step}) in {self.run_dir} is kept"
                 if self.checkpoint_step is not None else f"no checkpoint had been written to {self.run_dir} yet")
        if self.cfg.on_nonfinite == "stop":
            bar.close()
            raise InsertgenError(f"non-finite loss or gradient at step {self.step} (loss {loss}); training "
                                 f"stopped, {where} (train.on_nonfinite=skip skips such steps instead)")
        self.opt.zero_grad(set_to_none=True)
        self.nonfinite_steps += 1
        self._consecutive_skips += 1
        self._log({"step": self.step + 1, "skipped": "non-finite loss or gradient", "loss": loss})
        bar.write(f"step {self.step + 1}: non-finite loss or gradient, update skipped")
        if self._consecutive_skips >= self.cfg.max_nonfinite_skips:
            bar.close()
            raise InsertgenError(f"{self._consecutive_skips} steps in a row had a non-finite loss or gradient "
                                 f"(last: step {self.step + 1}); training stopped, {where}")

    def train(self, progress: bool = True) -> dict:
        cfg = self.cfg
        start_time = time.time()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress or not self.world.is_main,
                   desc="train", dynamic_ncols=True)
        window_tokens, window_start = 0.0, time.time()
        released_at = time.time()
        last: dict = {}
        self._consecutive_skips = 0
        while self.step < cfg.steps:
            lr, loss, stats, grad_norm, finite = self.train_step()
            if finite:
                self._consecutive_skips = 0
            else:
                self._nonfinite(loss, bar)
            self.step += 1
            window_tokens += stats.pop("tokens", 0.0)
            out_of_time = cfg.time_budget_s is not None and time.time() - start_time >= cfg.time_budget_s
            if self.world.distributed:  # every rank stops at the same step
                out_of_time = all_reduce_floats({"stop": float(out_of_time)}, self.world)["stop"] > 0
            if finite and (self.step % cfg.log_every == 0 or self.step == cfg.steps or out_of_time):
                elapsed = time.time() - window_start
                tok_s = window_tokens / max(elapsed, 1e-9)
                last = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": float(grad_norm),
                        "tokens_per_s": tok_s, "elapsed_s": time.time() - start_time,
                        "threads": torch.get_num_threads(), **stats}
                self._log(last)
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}")
                window_tokens, window_start = 0.0, time.time()
                if time.time() - released_at >= RELEASE_EVERY_S:
                    release_freed_memory()
                    released_at = time.time()
            bar.update(1)
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.world.is_main:
                metrics = self.validate()
                self._log({"step": self.step, "split": "validation", **metrics})
                bar.write(f"step {self.step}: validation " + ", ".join(
                    f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or out_of_time:
                self.save()
            if out_of_time:
                bar.write(f"time budget of {cfg.time_budget_s:.0f}s reached at step {self.step}")
                break
        bar.close()
        if self.world.is_main:
            try:
                plot_training(self.run_dir)
            except Exception as e:  # a plot must never cost a finished training run
                print(f"warning: could not draw the training curves: {e}")
        return last
