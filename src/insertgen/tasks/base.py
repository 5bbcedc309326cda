"""The task interface: data, text formats and metrics of one problem.

A task knows nothing about models. It hands out :class:`Example` s (token ids without special
tokens), parses and formats the task text (docs/methods/tasks.md#text-formats), and scores outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from insertgen.core.data import Example
from insertgen.core.vocab import Vocab

SPLITS = ("train", "validation", "test")


def sequence_match(target: list[int], output: list[int]) -> tuple[bool, float]:
    """(exact match, token accuracy) of one output: the accuracy counts positions ``i`` with
    ``output[i] == target[i]`` over ``max(len(target), len(output))``, so missing and surplus tokens are errors."""
    hits = sum(1 for a, b in zip(output, target) if a == b)
    return output == target, hits / max(len(target), len(output), 1)


class Task(ABC):
    """Base class of every task.

    Attributes:
        name: the task id (``star-easy``, ...).
        vocab: the task's vocabulary.
        prompt_block: the most prompt tokens any example of the task has.
        target_block: room for the generated target in a sampling buffer (>= longest target).
        conditional: whether examples have prompts (unconditional tasks are sampled with ``-n N``).
        prompt_in_target: whether each target begins with its prompt, whose tokens are then given in the
            canvas (fixed, after BOS) instead of preceding BOS (fragment-constrained molecules).
        eval_size: the number of examples (samples, for unconditional tasks) ``eval`` uses by default.
        headline_metrics: the metrics that compare models on the task, most important first (larger is
            better for each); ``reproduce`` ranks models and samplers by the first.
        generates_training_data: whether :meth:`fresh_examples` draws new examples from a generator (star
            graphs, mazes), so that training may draw a fresh batch at every step (``train.fresh_data``);
            tasks built on a fixed corpus (molecules) say False.
    """

    name: str
    vocab: Vocab
    prompt_block: int
    target_block: int
    conditional: bool = True
    prompt_in_target: bool = False
    eval_size: int | None = None  # how many examples `eval` uses by default (None: the whole split)
    headline_metrics: tuple[str, ...] = ("exact_match",)
    generates_training_data: bool = False

    @property
    def buffer_len(self) -> int:
        """Length of a training / sampling sequence: prompt (unless it is inside the target), BOS,
        target, EOS."""
        return (0 if self.prompt_in_target else self.prompt_block) + self.target_block + 2

    @property
    def greedy_by_default(self) -> bool:
        """Whether ``eval`` decodes greedily unless told otherwise (conditional tasks with one right
        answer); tasks scored on a distribution of samples say False."""
        return self.conditional

    @abstractmethod
    def examples(self, split: str) -> list[Example]:
        """The deterministic examples of ``split`` (one of :data:`SPLITS`)."""

    @abstractmethod
    def fresh_examples(self, n: int, seed: int) -> list[Example]:
        """``n`` new examples from the task's generator with its own seed (not the splits' seeds)."""

    def held_out_key(self, example: Example):
        """What makes two examples the same problem, for keeping fresh training data out of the
        evaluation splits (default: prompt and target)."""
        return tuple(example.prompt), tuple(example.target)

    @abstractmethod
    def parse_prompt(self, text: str) -> list[int]:
        """Task text -> prompt ids; malformed text raises :class:`InsertgenError` naming the problem."""

    @abstractmethod
    def parse_target(self, prompt: list[int], text: str) -> list[int]:
        """Task text of an output/target -> ids; raises :class:`InsertgenError` when malformed."""

    def format(self, ids) -> str:
        """Ids -> task text (special tokens dropped)."""
        return self.vocab.decode(ids)

    @abstractmethod
    def evaluate(self, examples: list[Example], outputs: list[list[int]]) -> dict[str, float]:
        """Metrics of ``outputs`` (data-token ids) against ``examples``; includes ``n``."""

    order_reference_label = "reference distance"  # what order_reference measures, for axis labels

    def order_reference(self, prompt: list[int], output: list[int]) -> list[int] | None:
        """Per output token, a task-defined distance used to study generation order (star graphs: the
        distance along the path from the junction); None when the task or the output has none."""
        return None

    def token_class(self, token: str) -> str | None:
        """A class name for a data token, used to study generation order by kind of token (molecules:
        ring digit, branch, atom, ...); the default (None for every task that does not override it)
        means the task has no classes."""
        return None

    def vocabulary_options(self) -> dict:
        """Options that give another task of this family this task's vocabulary (for a curriculum,
        ``train.curriculum_task``); none by default."""
        return {}

    def augment(self, tokens, seed: tuple[int, int], fixed=None):
        """Training-time augmentation of a batch of ``[prompt, BOS, target, EOS, PAD...]`` rows (``fixed``:
        their fixed mask), drawn deterministically from ``seed = (run seed, step)`` so that resumed runs
        repeat it; it may move only tokens that are not fixed. The default returns the batch unchanged."""
        return tokens

    def save_figure(self, examples: list[Example], outputs: list[list[int]], path) -> Path | None:
        """Draw some outputs to the PNG ``path`` when the task has a picture for them (mazes); returns the
        path written, or None (the default: nothing to draw)."""
        return None

    run_dir: Path | None = None  # the run directory the task was loaded from (engine.run.load_run), if any

    def save_held_out(self, run_dir: Path) -> None:
        """Keep what evaluating the run needs in its directory when the task's data may not stay at hand
        (the sequences task: its validation and test examples); nothing by default."""

    def stored_options(self, given: dict) -> dict:
        """The task options a run's config.json keeps to rebuild this task (``given``: those it was built with;
        a task that derives more from its data, such as a vocabulary, adds them)."""
        return given

    @abstractmethod
    def config(self) -> dict:
        """JSON-serialisable description: generator, parameters, seeds, split sizes."""
