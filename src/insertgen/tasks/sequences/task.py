"""Task ``sequences``: a user's own sequences, read from JSONL files.

Each line of a file is ``{"text": ...}`` (unconditional: the model learns to write such texts) or
``{"prompt": ..., "target": ...}`` (conditional: it learns to answer the prompt); every line of the files of
one task is of the same kind, other keys are ignored. Options (``--set task.KEY=VALUE``; ``insertgen train
--data FILE`` sets ``train``):

    train           the training file (required to train; not needed to sample, score or evaluate on given
                    texts once the run exists)
    valid, test     their files; when absent, drawn from the training file (``held_out`` lines each, or a
                    tenth of the file when that is smaller, with ``split_seed``; recorded in the run's config)
    tokenizer       whitespace (default), chars, smiles, or regex:PATTERN (tasks/sequences/tokenizers.py)
    max_len         the longest prompt + target in tokens that the run's buffer holds (default: the longest in
                    the files); a line over it is skipped and counted, with a warning
    vocabulary      the data tokens, in id order: built from the training file (sorted) when the run is made,
                    then stored in config.json, so that the run works without its files

Metrics: conditional data: ``exact_match`` and ``token_accuracy`` (tasks/base.sequence_match); unconditional
data: ``distinct`` (share of distinct samples), ``seen_in_training`` (share of samples equal to a training
text) and ``novel_distinct`` (distinct samples not in the training file, as a share of all); both: the mean
token length of the outputs and of the data (``sample_length``, ``data_length``). Held-out nats per token are
`insertgen eval`'s and `score`'s, as for every task.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

from insertgen.core.data import Example
from insertgen.core.errors import InsertgenError
from insertgen.core.io import iter_lines, parse_jsonl_line, write_jsonl
from insertgen.core.vocab import SPECIAL_TOKENS, Vocab
from insertgen.tasks.base import SPLITS, Task, sequence_match
from insertgen.tasks.sequences.tokenizers import tokenizer_of

HELD_OUT = 1_000  # lines drawn from the training file for each of validation and test, when not given
HELD_OUT_DIR = "held-out"  # RUN_DIR/held-out/{validation,test}.jsonl (save_held_out)
MAX_FILE_BYTES = 4 * 2**30  # the examples are held in memory as token ids (about 8 bytes a token)


class SequenceTask(Task):
    """Sequences from JSONL files (module docstring)."""

    name = "sequences"
    eval_size = 1_000

    def __init__(self, train: str | None = None, valid: str | None = None, test: str | None = None,
                 tokenizer: str = "whitespace", max_len: int | None = None, held_out: int = HELD_OUT,
                 split_seed: int = 0, vocabulary: list[str] | None = None, conditional: bool | None = None,
                 prompt_block: int | None = None, target_block: int | None = None):
        self.files = {"train": train, "validation": valid, "test": test}
        if vocabulary is None:  # a new run records where its files are, wherever it is used from later
            self.files = {k: None if f is None else str(Path(f).resolve()) for k, f in self.files.items()}
        self.tokenizer = tokenizer_of(tokenizer)
        if max_len is not None and int(max_len) < 1:
            raise InsertgenError(f"task.max_len must be a positive number of tokens, not {max_len}")
        if int(held_out) < 1:
            raise InsertgenError(f"task.held_out must be >= 1, not {held_out}")
        self.max_len, self.held_out, self.split_seed = max_len, int(held_out), int(split_seed)
        self._examples: dict[str, list[Example]] | None = None
        self.skipped: dict[str, int] = {}
        if vocabulary is None:  # a new run: everything is read from the files
            if train is None:
                raise InsertgenError("the sequences task needs a training file: --data FILE (or --set task.train=FILE)")
            self._read()
        else:  # a run's stored description: the files are read only if examples are asked for
            self.vocab = Vocab(vocabulary)
            self.conditional = self._kind = bool(conditional)
            self.prompt_block, self.target_block = int(prompt_block), int(target_block)

    # -- reading the files ------------------------------------------------------------------

    def _read_file(self, path: str) -> list[tuple[list[str], list[str]]]:
        """(prompt tokens, target tokens) of every line of ``path``; a malformed line raises InsertgenError
        naming ``path:line``; lines over ``max_len`` are skipped and counted."""
        p = Path(path)
        if p.is_file() and p.stat().st_size > MAX_FILE_BYTES:
            raise InsertgenError(f"{p} is {p.stat().st_size / 2**30:.1f} GiB; the sequences task holds its "
                                 f"examples in memory and reads files up to {MAX_FILE_BYTES / 2**30:.0f} GiB "
                                 "(split it, or subsample it)")
        rows, kind = [], None
        for lineno, line in iter_lines(p):
            if not line.strip():
                continue  # blank lines (a trailing newline) are allowed between examples
            try:
                obj = parse_jsonl_line(line)
                line_kind = "conditional" if "target" in obj or "prompt" in obj else "text"
                if kind is None:
                    kind = line_kind
                elif line_kind != kind:
                    raise InsertgenError("a 'text' line among 'prompt' / 'target' lines (or the other way "
                                         "round): every line of the task's files must be of one kind")
                keys = ("prompt", "target") if kind == "conditional" else ("text",)
                for key in keys:
                    if key not in obj:
                        raise InsertgenError(f"missing key {key!r}")
                    if not isinstance(obj[key], str):
                        raise InsertgenError(f"{key!r} must be a string")
                prompt = self.tokenizer.split(obj["prompt"]) if kind == "conditional" else []
                target = self.tokenizer.split(obj["target" if kind == "conditional" else "text"])
                if not target:
                    raise InsertgenError("empty target" if kind == "conditional" else "empty text")
                for token in (*prompt, *target):
                    if token in SPECIAL_TOKENS:
                        raise InsertgenError(f"the token {token!r} is reserved (insertgen's special tokens)")
            except InsertgenError as e:
                raise InsertgenError(f"{p}:{lineno}: {e}") from None
            if self.max_len is not None and len(prompt) + len(target) > int(self.max_len):
                self.skipped[str(p)] = self.skipped.get(str(p), 0) + 1
                continue
            rows.append((prompt, target))
        if not rows:
            raise InsertgenError(f"{p} holds no example" + (f" within max_len {self.max_len}" if self.skipped else ""))
        file_kind = kind == "conditional"
        if getattr(self, "_kind", file_kind) != file_kind:
            raise InsertgenError(f"{p} holds {'prompt / target' if file_kind else 'text'} lines, the training "
                                 f"file the other kind")
        self._kind = file_kind
        return rows

    def _read(self) -> None:
        """Read every file, build the vocabulary and the lengths (a new run) or check them (a stored one)."""
        raw = {"train": self._read_file(self.files["train"])}
        for split in ("validation", "test"):
            if self.files[split] is not None:
                raw[split] = self._read_file(self.files[split])
        drawn = [s for s in ("validation", "test") if s not in raw]
        if drawn:  # held-out lines drawn from the training file, without replacement
            train = raw["train"]
            k = min(self.held_out, len(train) // 10)
            if k < 1:
                raise InsertgenError(f"{self.files['train']} has {len(train)} examples: too few to draw validation "
                                     "and test examples from (give --valid and --test files)")
            order = list(range(len(train)))
            random.Random(self.split_seed).shuffle(order)
            for i, split in enumerate(drawn):
                raw[split] = [train[j] for j in order[i * k:(i + 1) * k]]
            taken = set(order[: k * len(drawn)])
            raw["train"] = [row for j, row in enumerate(train) if j not in taken]
        if self.skipped:
            warnings.warn(f"sequences task: lines longer than max_len {self.max_len} skipped: "
                          + ", ".join(f"{n} in {f}" for f, n in self.skipped.items()), stacklevel=2)
        if not hasattr(self, "vocab"):
            self.vocab = Vocab(sorted({t for p, x in raw["train"] for t in (*p, *x)}))
            self.conditional = self._kind
            rows = [row for split in SPLITS for row in raw[split]]
            self.prompt_block = max(len(p) for p, _ in rows)
            self.target_block = max(len(x) for _, x in rows)
        self._examples = {}
        for split in SPLITS:
            examples = []
            for prompt, target in raw[split]:
                try:
                    examples.append(Example(tuple(self.vocab.encode(prompt)), tuple(self.vocab.encode(target))))
                except InsertgenError as e:
                    raise InsertgenError(f"{self.files[split] or self.files['train']}: {e}; the vocabulary is the "
                                         f"training file's") from None
            self._examples[split] = examples

    # -- the Task interface -------------------------------------------------------------------

    def examples(self, split: str) -> list[Example]:
        if split not in SPLITS:
            raise InsertgenError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        if self._examples is None:
            missing = [f for f in self.files.values() if f is not None and not os.path.exists(f)]
            if self.files["train"] is None or missing:
                kept = None if self.run_dir is None else Path(self.run_dir) / HELD_OUT_DIR / f"{split}.jsonl"
                if kept is not None and kept.is_file():
                    return self._read_held_out(kept)
                raise InsertgenError(f"the run's data file {(missing or [None])[0] or '(none recorded)'} is not here: "
                                     "sample, score and the held-out splits work without it; the training split "
                                     "needs it")
            self._read()
        return self._examples[split]

    def save_held_out(self, run_dir: Path) -> None:
        """RUN_DIR/held-out/{validation,test}.jsonl: the held-out examples as token lists (any tokeniser reads
        them back exactly), so that eval, analysis and report work on the run with its files gone."""
        folder = Path(run_dir) / HELD_OUT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("validation", "test"):
            tokens = self.vocab.tokens
            write_jsonl(folder / f"{split}.jsonl", [
                {"prompt": [tokens[i] for i in ex.prompt], "target": [tokens[i] for i in ex.target]}
                for ex in self.examples(split)])

    def _read_held_out(self, path: Path) -> list[Example]:
        examples = []
        for lineno, line in iter_lines(path):
            try:
                obj = parse_jsonl_line(line)
                prompt, target = self.vocab.encode(obj["prompt"]), self.vocab.encode(obj["target"])
                examples.append(Example(tuple(prompt), tuple(target)))
            except (InsertgenError, KeyError, TypeError) as e:
                raise InsertgenError(f"{path}:{lineno}: {e}") from None
        return examples

    def fresh_examples(self, n: int, seed: int) -> list[Example]:
        raise InsertgenError("the sequences task has no generator of new examples (fresh_data does not apply)")

    def parse_prompt(self, text: str) -> list[int]:
        try:
            return self.vocab.encode(self.tokenizer.split(text))
        except InsertgenError as e:
            raise InsertgenError(f"{e}; the run's vocabulary has {len(self.vocab) - self.vocab.num_special} "
                                 "tokens, from its training file") from None

    def parse_target(self, prompt: list[int], text: str) -> list[int]:
        return self.parse_prompt(text)

    def format(self, ids) -> str:
        return self.tokenizer.join([self.vocab.tokens[int(i)] for i in ids if int(i) >= self.vocab.num_special])

    def evaluate(self, examples: list[Example], outputs: list[list[int]]) -> dict[str, float]:
        if len(examples) != len(outputs):
            raise InsertgenError(f"{len(examples)} examples but {len(outputs)} outputs")
        n = max(len(outputs), 1)
        metrics: dict[str, float] = {"n": len(outputs)}
        if self.conditional:
            scores = [sequence_match(list(ex.target), [int(i) for i in out]) for ex, out in zip(examples, outputs)]
            metrics["exact_match"] = sum(s[0] for s in scores) / n
            metrics["token_accuracy"] = sum(s[1] for s in scores) / n
        else:
            texts = [tuple(int(i) for i in out) for out in outputs]
            seen = {tuple(ex.target) for ex in self.examples("train")} if self.files["train"] and os.path.exists(
                self.files["train"]) else None
            metrics["distinct"] = len(set(texts)) / n
            if seen is not None:
                metrics["seen_in_training"] = sum(t in seen for t in texts) / n
                metrics["novel_distinct"] = len({t for t in texts if t not in seen}) / n
        metrics["sample_length"] = sum(len(o) for o in outputs) / n
        metrics["data_length"] = sum(len(ex.target) for ex in examples) / max(len(examples), 1)
        return metrics

    order_reference_label = "position in the output (0 = first)"

    def order_reference(self, prompt: list[int], output: list[int]) -> list[int]:
        """Each output token's position, so that the order correlation says how a model writes: +1 left to
        right, -1 right to left, 0 in no order tied to the position (`insertgen analysis`)."""
        return list(range(len(output)))

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        return ("exact_match", "token_accuracy") if self.conditional else ("novel_distinct", "distinct")

    @property
    def greedy_by_default(self) -> bool:
        return self.conditional

    def stored_options(self, given: dict) -> dict:
        """The options that rebuild this task without its files (config.json's ``task_options``)."""
        return {"train": self.files["train"], "valid": self.files["validation"], "test": self.files["test"],
                "tokenizer": self.tokenizer.spec, "max_len": self.max_len, "held_out": self.held_out,
                "split_seed": self.split_seed, "vocabulary": self.vocab.tokens[self.vocab.num_special:],
                "conditional": self.conditional, "prompt_block": self.prompt_block,
                "target_block": self.target_block}

    def config(self) -> dict:
        sizes = {s: len(e) for s, e in self._examples.items()} if self._examples else None
        return {"task": self.name, "files": self.files, "tokenizer": self.tokenizer.spec,
                "conditional": self.conditional, "vocabulary_size": len(self.vocab) - self.vocab.num_special,
                "prompt_block": self.prompt_block, "target_block": self.target_block, "split_sizes": sizes,
                "held_out_drawn_from_train": [s for s in ("validation", "test") if self.files[s] is None],
                "split_seed": self.split_seed, "skipped_over_max_len": dict(self.skipped)}
