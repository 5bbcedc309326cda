"""The prompts of one ``sample()`` call and what it returns: the canvas bookkeeping every model family shares.

A prompt is read in one of two ways. As context (the default) the canvas is ``[prompt, BOS, target, EOS]`` and
the output is the generated target. With ``prompt_in_target`` the prompt is the target's first tokens, kept as
they are, ``[BOS, prompt ... generated ..., EOS]``, and the output is the whole target (insertion models may
write around and between the prompt's tokens). :class:`Requests` puts both in one form,

    context  (tokens before BOS: the prompt, or nothing)
    start    (the target's given tokens: nothing, or the prompt)
    cap      (the longest target the buffer holds: max_len - len(context) - 2),

so that a family's sampler reads only (context, start, cap), returns each final target with, per target token,
the step at which it was inserted and unmasked (-1: given), and :meth:`Requests.result` turns that into the
outputs and the :class:`SampleOutput` record in the one convention the evaluation, analysis and demo read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from insertgen.core.errors import InsertgenError
from insertgen.core.sampling import SampleOutput
from insertgen.core.vocab import Vocab


@dataclass(frozen=True)
class Requests:
    """One generation request per prompt: its context, the target's given start and the target's cap."""

    vocab: Vocab
    context: list[list[int]]
    start: list[list[int]]
    cap: list[int]

    @classmethod
    def of(cls, prompts: list[list[int]], vocab: Vocab, max_len: int, prompt_in_target: bool = False) -> "Requests":
        """The requests of ``prompts`` for a model whose canvases hold ``max_len`` tokens; a prompt that leaves no
        room for ``BOS`` and ``EOS`` around itself raises InsertgenError."""
        prompts = [list(p) for p in prompts]
        context = [[] for _ in prompts] if prompt_in_target else prompts
        start = prompts if prompt_in_target else [[] for _ in prompts]
        cap = [max_len - len(c) - 2 for c in context]
        for p, s, room in zip(prompts, start, cap):
            if room < 0 or len(s) > room:
                raise InsertgenError(f"a prompt of {len(p)} tokens does not fit the model's buffer of {max_len} "
                                     f"tokens (with BOS and EOS)")
        return cls(vocab, context, start, cap)

    def __len__(self) -> int:
        return len(self.context)

    def canvas(self, width: int) -> tuple[Tensor, Tensor]:
        """The initial canvases ``[context, BOS, start, EOS, PAD ...]`` (B, width) and their fixed mask (context,
        BOS and start: what the sampler must not change)."""
        v = self.vocab
        tokens = torch.full((len(self), width), v.pad_id, dtype=torch.long)
        fixed = torch.zeros((len(self), width), dtype=torch.bool)
        for i, (c, s) in enumerate(zip(self.context, self.start)):
            row = [*c, v.bos_id, *s, v.eos_id]
            if len(row) > width:
                raise InsertgenError(f"a prompt of {len(c) + len(s)} tokens does not fit a canvas of {width} tokens")
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            fixed[i, : len(row) - 1] = True
        return tokens, fixed

    def outputs(self, canvases: list[list[int]]) -> list[list[int]]:
        """The targets read off final canvases (:func:`split_output`)."""
        return [split_output(row, self.vocab) for row in canvases]

    def result(self, targets: list[list[int]], return_trajectory: bool, *, model_evals: list[int],
               forward_calls: int, insert_step: list[list[int]] | None = None,
               unmask_step: list[list[int]] | None = None, terminated: list[bool] | None = None):
        """What ``sample()`` returns: the targets, or with ``return_trajectory`` ``(targets, SampleOutput)`` whose
        canvases are ``[context, BOS, target, EOS]`` and whose steps are -1 on the context, BOS and EOS and, per
        target token, ``insert_step`` / ``unmask_step`` (each -1 everywhere when not given; ``unmask_step``
        defaults to ``insert_step``: a token written when it is inserted)."""
        targets = [list(t) for t in targets]
        if not return_trajectory:
            return targets
        v = self.vocab
        if insert_step is None:
            insert_step = [[-1] * len(t) for t in targets]
        if unmask_step is None:
            unmask_step = insert_step
        for t, ins, unm in zip(targets, insert_step, unmask_step):
            if not len(t) == len(ins) == len(unm):
                raise ValueError(f"{len(t)} target tokens with {len(ins)} insertion and {len(unm)} unmasking steps")
        rows = [[*c, v.bos_id, *t, v.eos_id] for c, t in zip(self.context, targets)]

        def with_frame(steps: list[list[int]]) -> list[list[int]]:
            return [[-1] * (len(c) + 1) + list(s) + [-1] for c, s in zip(self.context, steps)]

        return targets, SampleOutput(tokens=rows, insert_step=with_frame(insert_step),
                                     unmask_step=with_frame(unmask_step), model_evals=list(model_evals),
                                     forward_calls=forward_calls, terminated=terminated)


def output_positions(row: list[int], vocab: Vocab) -> list[int]:
    """Indices of the generated data tokens of a final canvas: after the first BOS, before the next EOS,
    special tokens skipped."""
    try:
        start = row.index(vocab.bos_id) + 1
    except ValueError:
        start = 0
    out = []
    for k in range(start, len(row)):
        if row[k] == vocab.eos_id:
            break
        if row[k] >= vocab.num_special:
            out.append(k)
    return out


def split_output(row: list[int], vocab: Vocab) -> list[int]:
    """The generated data tokens of a final canvas (see :func:`output_positions`)."""
    return [row[k] for k in output_positions(row, vocab)]
