"""Examples -> padded batches, and a resumable shuffled batch order.

Layout of a training sequence (docs/methods/tasks.md#buffer-layout):

    x_1   = [prompt..., BOS, target..., EOS, PAD...]
    fixed = [   1    ,  1 ,    0     ,  1 ,  0 ...]

For sampling the canvas is ``[prompt..., BOS, EOS, PAD...]`` with prompt and BOS fixed; everything is
inserted between BOS and EOS.

When the task's targets begin with their prompt (``prompt_in_target``, fragment-constrained molecules)
the prompt is not repeated before BOS; its tokens are the fixed start of the target instead:

    x_1   = [BOS, prompt..., rest of target..., EOS, PAD...]
    fixed = [ 1 ,    1     ,        0         ,  1 ,  0 ...]

and the sampling canvas is ``[BOS, prompt..., EOS]`` with BOS and the prompt fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from insertgen.core.errors import InsertgenError
from insertgen.core.vocab import Vocab


@dataclass(frozen=True)
class Example:
    """One (prompt, target) pair as data-token ids (no PAD/MASK/BOS/EOS). ``group`` optionally names the
    prompt an example was made from, for tasks that score several samples per prompt (fragment tasks:
    ``"linker:17"``); equal prompts of different groups stay apart."""

    prompt: tuple[int, ...]
    target: tuple[int, ...]
    group: str = ""


@dataclass
class Batch:
    tokens: Tensor  # (B, L) x_1
    fixed: Tensor  # (B, L) bool: prompt, BOS, EOS

    def to(self, device) -> "Batch":
        return Batch(self.tokens.to(device), self.fixed.to(device))


def collate(examples: list[Example], vocab: Vocab, length: int | None = None,
            prompt_in_target: bool = False) -> Batch:
    """Pad ``[prompt, BOS, target, EOS]`` (``prompt_in_target``: ``[BOS, target, EOS]`` with the prompt
    fixed at the start of the target) to ``length`` (default: the longest in the batch)."""
    if prompt_in_target:
        bad = next((ex for ex in examples if tuple(ex.target[: len(ex.prompt)]) != tuple(ex.prompt)), None)
        if bad is not None:
            raise ValueError(f"a target does not begin with its prompt (prompt {list(bad.prompt)[:8]}...)")
        rows = [[vocab.bos_id] + list(ex.target) + [vocab.eos_id] for ex in examples]
    else:
        rows = [list(ex.prompt) + [vocab.bos_id] + list(ex.target) + [vocab.eos_id] for ex in examples]
    width = max(len(r) for r in rows) if length is None else length
    if any(len(r) > width for r in rows):
        raise ValueError(f"a sequence is longer than the buffer length {width}")
    tokens = torch.full((len(rows), width), vocab.pad_id, dtype=torch.long)
    fixed = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, ex) in enumerate(zip(rows, examples)):
        tokens[i, : len(row)] = torch.tensor(row)
        fixed[i, : len(ex.prompt) + 1] = True  # prompt and BOS (BOS and prompt when prompt_in_target)
        fixed[i, len(row) - 1] = True  # EOS
    return Batch(tokens, fixed)


class BatchOrder:
    """Shuffled global mini-batches over ``n`` examples, epoch after epoch, with a resumable position.

    The order of epoch e is ``permutation(n)`` from ``numpy.random.default_rng([seed, e])``, so the
    state ``(epoch, cursor)`` alone determines every later batch. A trailing partial batch is dropped
    (each epoch uses the first ``(n // batch_size) * batch_size`` indices of its permutation, each once).
    Data-parallel ranks and gradient-accumulation steps split each global batch with
    :func:`micro_batch_indices`, so the examples of a step do not depend on how many processes share it.

    Length bucketing (``lengths`` given and ``bucket_batches`` > 1): the permutation is cut into windows
    of ``bucket_batches`` batches; each window is sorted by length (stable), cut into batches, and the
    batches of the window are put in a random order (same generator). Every batch then holds examples of
    similar length, so less of it is padding; each example is still used once per epoch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, lengths=None, bucket_batches: int = 0):
        if n < batch_size:
            raise ValueError(f"batch size {batch_size} is larger than the {n} training examples")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths for {n} examples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.lengths = None if lengths is None or bucket_batches <= 1 else np.asarray(lengths)
        self.bucket_batches = bucket_batches
        self.epoch, self.cursor = 0, 0
        self._perm = None

    def _permutation(self) -> np.ndarray:
        if self._perm is None or self._perm[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            perm = rng.permutation(self.n)
            if self.lengths is not None:
                perm = self._bucketed(perm[: (self.n // self.batch_size) * self.batch_size], rng)
            self._perm = (self.epoch, perm)
        return self._perm[1]

    def _bucketed(self, perm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        window = self.bucket_batches * self.batch_size
        out = []
        for start in range(0, len(perm), window):
            part = perm[start : start + window]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches = part.reshape(-1, self.batch_size)
            out.append(batches[rng.permutation(len(batches))].reshape(-1))
        return np.concatenate(out) if out else perm

    def next(self) -> np.ndarray:
        """Indices of the next global batch."""
        if self.cursor >= self.n // self.batch_size:
            self.epoch, self.cursor = self.epoch + 1, 0
        start = self.cursor * self.batch_size
        self.cursor += 1
        return self._permutation()[start : start + self.batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])


def micro_batch_indices(batch: np.ndarray, part: int, parts: int) -> np.ndarray:
    """Part ``part`` of ``parts`` equal consecutive shares of a global batch (rank r, accumulation step m
    take part ``r * grad_accum + m``); the parts are disjoint and cover the batch."""
    if len(batch) % parts:
        raise ValueError(f"a batch of {len(batch)} does not split into {parts} equal micro-batches")
    size = len(batch) // parts
    return batch[part * size : (part + 1) * size]


FRESH_STREAM = 0x46524553  # tags the seeds of fresh training batches: tuples, never the splits' integer seeds


class FreshBatches:
    """Training batches drawn anew from the task's generator at every step (``train.fresh_data``).

    Step s's global batch is ``task.fresh_examples(n, (FRESH_STREAM, seed, s, k))`` for k = 0, 1, ...,
    every example that is one of the task's validation or test problems (``task.held_out_key``) dropped,
    until ``n`` remain. It is a function of (seed, step) alone, so ``--resume`` continues it exactly; the
    generator seeds are tuples, never the integer seeds of the splits or of fresh evaluation graphs, and
    the evaluation problems are excluded by content as well.
    """

    def __init__(self, task, batch_size: int, seed: int):
        if not task.generates_training_data:
            raise ValueError(f"task {task.name} has no generator of new examples (its examples come from a "
                             f"fixed corpus), so it cannot train on fresh data")
        self.task, self.batch_size, self.seed = task, batch_size, seed
        self.held_out = {task.held_out_key(ex) for split in ("validation", "test") for ex in task.examples(split)}
        self.dropped = 0

    def examples(self, step: int) -> list[Example]:
        out: list[Example] = []
        attempt = 0
        while len(out) < self.batch_size:
            drawn = self.task.fresh_examples(self.batch_size - len(out), (FRESH_STREAM, self.seed, step, attempt))
            kept = [ex for ex in drawn if self.task.held_out_key(ex) not in self.held_out]
            self.dropped += len(drawn) - len(kept)
            out += kept
            attempt += 1
            if attempt > 1000:
                raise InsertgenError(f"train.fresh_data: 1,000 draws of {self.task.name} gave too few problems that "
                                     f"are not in its validation or test split: at this size the splits hold "
                                     f"(nearly) every problem; choose a larger size")
        return out
