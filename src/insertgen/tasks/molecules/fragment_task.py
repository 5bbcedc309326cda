"""Tasks ``fragment-{linker,motif,scaffold,superstructure}`` and their mixture ``fragment-all``:
fragment-constrained molecule generation (GenMol's four tasks) in bracket SAFE
(docs/methods/tasks.md#fragment-constrained-molecules).

The prompt is the fragment(s) in bracket SAFE with open attachment points ``<k>``; the model writes the
whole molecule, and the target *begins with the prompt* (GenMol's layout: fragment, ``.``, generated
fragments). The prompt tokens are therefore given in the canvas (``prompt_in_target``), and every model
conditions on them as the start of its sequence:

* FlexMDM / LoFlexMDM: the prompt tokens are fixed tokens of ``x_t`` from t = 0 (never deleted or
  masked); the sampler starts from ``[BOS, prompt, EOS]`` and may insert into every gap after BOS,
  around and between the fragment's tokens;
* IP / AO-IP: the canvas starts with the prompt tokens; the policy inserts the remaining tokens anywhere
  (the posterior orders only the generated tokens);
* ARM: the prompt is the forced start of the target; decoding continues after it;
* MDM: the prompt fills the first target slots, unmasked; the rest of the canvas is masked.

Training data (chosen here: joint training on fragment and de novo examples, from scratch): every
drawn MOSES *training* molecule (``train_size`` [100,000], ``default_rng(seed)``) becomes, with
probability ``denovo_fraction`` [0.2], a de novo example (empty prompt), otherwise a fragment example of
the task (``fragment-all``: of a task drawn uniformly among those the molecule allows); molecules the
task cannot cut become de novo examples. Targets longer than 80 tokens or using a token outside the
SAFE vocabulary are counted and left out. ``augment`` [on] shuffles the generated fragments of each
sequence (after the prompt) at every step.

Evaluation: the test split is the shipped benchmark (``data/fragment_prompts.jsonl``, 100 prompts per
task cut from MOSES *test* molecules, made by ``insertgen fragment-prompts``), the first ``prompts``
[100] of each task, each repeated ``samples_per_prompt`` [100] times; the validation split is the next
100 prompts per task, once each. Metrics: :mod:`fragment_metrics` per task (``fragment-all`` reports
each task's under its name, ``linker/validity``, ..., and their mean).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from insertgen.core.errors import InsertgenError
from insertgen.tasks.base import Example
from insertgen.tasks.molecules import (
    bracket_safe,
    fragment_metrics,
    fragments,
    metrics,
    moses,
)
from insertgen.tasks.molecules.fragments import (
    FRAGMENT_TASKS,
    FragmentPrompt,
    FragmentQuery,
)
from insertgen.tasks.molecules.plots import plot_molecule_samples
from insertgen.tasks.molecules.task import BLOCKS, MoleculeTask
from insertgen.tasks.molecules.tokens import SAFE_TOKENS, tokenize

BENCHMARK_FILE = Path(__file__).parent / "data" / "fragment_prompts.jsonl"
TASK_IDS = tuple(f"fragment-{t}" for t in FRAGMENT_TASKS) + ("fragment-all",)
SUMMARY = ("validity", "uniqueness", "quality_all", "quality_unique", "diversity", "distance")


def benchmark_prompts(path: Path = BENCHMARK_FILE) -> dict[str, list[FragmentPrompt]]:
    """The shipped benchmark prompts by task, in file order."""
    if not path.is_file():
        raise InsertgenError(f"the fragment benchmark {path} is missing: run `insertgen fragment-prompts`")
    out: dict[str, list[FragmentPrompt]] = {t: [] for t in FRAGMENT_TASKS}
    for p in fragments.read_jsonl(path):
        out.setdefault(p.task, []).append(p)
    return out


def fits(prompt: FragmentPrompt) -> bool:
    """Whether a prompt's target uses only SAFE-vocabulary tokens and fits the SAFE block (80 tokens)."""
    tokens = tokenize(prompt.target)
    return len(tokens) <= BLOCKS["safe"] and set(tokens) <= _SAFE_TOKEN_SET


_SAFE_TOKEN_SET = frozenset(SAFE_TOKENS)


def build_benchmark_file() -> str:
    """The benchmark file's text: :func:`fragments.build_benchmark` over the MOSES test set, test prompts
    of the four tasks in order, one JSON object per line (sorted keys)."""
    metrics.quiet_rdkit()
    bench = fragments.build_benchmark(moses.read_split("test").strings, fits, validation=0)
    return "".join(fragments.prompt_line(p) + "\n" for t in FRAGMENT_TASKS for p in bench[t]["test"])


class FragmentTask(MoleculeTask):
    """Fragment-constrained generation (module docstring); ``which`` is one of FRAGMENT_TASKS or ``all``."""

    conditional = True
    prompt_in_target = True
    greedy_by_default = False
    headline_metrics = ("validity", "quality_all", "uniqueness", "diversity")

    def __init__(self, which: str, train_size: int = 100_000, seed: int = 0, augment: bool = True,
                 denovo_fraction: float = 0.2, samples_per_prompt: int = 100, prompts: int = 100):
        if which not in FRAGMENT_TASKS + ("all",):
            raise ValueError(f"unknown fragment task {which!r}; tasks: {', '.join(TASK_IDS)}")
        if not 0.0 <= denovo_fraction <= 1.0:
            raise InsertgenError(f"denovo_fraction must be in [0, 1], not {denovo_fraction}")
        if samples_per_prompt < 1 or not 1 <= prompts <= fragments.BENCHMARK_PROMPTS:
            raise InsertgenError(f"samples_per_prompt must be >= 1 and prompts in 1..{fragments.BENCHMARK_PROMPTS}")
        super().__init__("safe", train_size=train_size, seed=seed, augment=augment)
        self.which = which
        self.name = f"fragment-{which}"
        self.tasks = FRAGMENT_TASKS if which == "all" else (which,)
        self.denovo_fraction = float(denovo_fraction)
        self.samples_per_prompt, self.prompts = int(samples_per_prompt), int(prompts)
        self.prompt_block = self.target_block - 1  # the prompt is inside the target, with room to generate
        self.eval_size = None
        self._groups: dict[str, tuple[str, FragmentQuery, str]] = {}  # group -> (task, query, source)

    # -- data ------------------------------------------------------------------------------

    def _example(self, p: FragmentPrompt, group: str) -> Example:
        """The example of prompt ``p``, in prompt group ``group`` (``TASK:NAME``)."""
        prompt, target = self.vocab.encode(tokenize(p.prompt)), self.vocab.encode(tokenize(p.target))
        self._groups[group] = (p.task, FragmentQuery.of(p.prompt, p.task), p.source)
        return Example(tuple(prompt), tuple(target), group)

    def _train_records(self) -> list[str]:
        """JSON lines ``{"task", "prompt", "target", "source"}`` of the training split (cached on disk)."""
        smiles = moses.subsample(moses.read_split("train").strings, self.train_size, self.seed)
        digest = moses.strings_digest(smiles)
        name = (f"fragments-v2-{self.which}-train-{len(smiles)}-seed{self.seed}-denovo{self.denovo_fraction}-"
                f"{digest}.jsonl")

        def build() -> list[str]:
            from rdkit import Chem  # optional: the molecules extra

            metrics.quiet_rdkit()
            lines = []
            for i, s in enumerate(tqdm(smiles, desc=f"{self.name} train prompts", mininterval=5)):
                rng = np.random.default_rng([self.seed, i, 1])
                record = None
                if rng.random() >= self.denovo_fraction:
                    for task in rng.permutation(self.tasks):
                        p = fragments.build_prompt(s, str(task), self.seed, i)
                        if p is not None and fits(p):
                            record = {"task": p.task, "prompt": p.prompt, "target": p.target, "source": p.source}
                            break
                if record is None:
                    mol = fragments.canonical_mol(s)
                    if mol is None:
                        continue
                    _, target = fragments.write(mol, set(), [])
                    record = {"task": "denovo", "prompt": "", "target": target, "source": Chem.MolToSmiles(mol)}
                lines.append(json.dumps(record, sort_keys=True))
            return lines

        what = (f"the {self.name} training prompts from {len(smiles):,} MOSES molecules (BRICS cuts, a few "
                f"minutes per 100,000)")
        return [line for line in moses.cached_lines(name, build, what) if line]

    def _build_split(self, split: str) -> list[Example]:
        """One split, which :meth:`MoleculeTask.examples` builds on first use only (the demo and evaluation
        never pay for the training prompts, whose first build takes minutes)."""
        builders = {"train": self._train_examples, "validation": self._validation_examples,
                    "test": self._test_examples}
        return builders[split]()

    def _test_examples(self) -> list[Example]:
        """The shipped benchmark: the first ``prompts`` of each task, each ``samples_per_prompt`` times."""
        bench = benchmark_prompts()
        return [ex for t in self.tasks for i, p in enumerate(bench[t][: self.prompts])
                for ex in [self._example(p, f"{t}:{i}")] * self.samples_per_prompt]

    def _validation_examples(self) -> list[Example]:
        """The next 100 prompts per task, rebuilt from the MOSES test molecules as the benchmark was."""
        metrics.quiet_rdkit()
        rebuilt = fragments.build_benchmark(moses.read_split("test").strings, fits, tasks=self.tasks)
        return [self._example(p, f"{t}:validation-{i}") for t in self.tasks
                for i, p in enumerate(rebuilt[t]["validation"])]

    def _train_examples(self) -> list[Example]:
        train, skipped = [], {"not_encodable": 0, "too_long": 0}
        counts: dict[str, int] = {}
        for line in self._train_records():
            r = json.loads(line)
            tokens = tokenize(r["target"])
            if len(tokens) > self.target_block:
                skipped["too_long"] += 1
                continue
            if any(self.vocab._index.get(t, -1) < self.vocab.num_special for t in tokens):
                skipped["not_encodable"] += 1
                continue
            train.append(Example(tuple(self.vocab.encode(tokenize(r["prompt"]))), tuple(self.vocab.encode(tokens))))
            counts[r["task"]] = counts.get(r["task"], 0) + 1
        self.skipped = {"train": skipped, "train_examples_by_task": counts}
        return train

    def fresh_examples(self, n: int, seed: int) -> list[Example]:
        """``n`` prompts cut from MOSES test molecules taken in the order of ``default_rng(seed)``."""
        test = moses.read_split("test").strings
        order = np.random.default_rng(seed).permutation(len(test))
        ordered = [test[int(i)] for i in order]
        out, start = [], 0
        while len(out) < n and start < len(ordered):
            task = self.tasks[len(out) % len(self.tasks)]
            got, start = fragments.build_prompts(ordered, task, 1, seed, fits, start=start)
            out += [self._example(p, f"{task}:fresh-{seed}-{len(out)}") for p in got]
        return out

    def augment(self, tokens: torch.Tensor, seed: tuple[int, int], fixed=None) -> torch.Tensor:
        """Shuffle the generated fragments of each ``[BOS, prompt . rest, EOS]`` row; the prompt (the
        fixed tokens after BOS, given by ``fixed``) and its ``.`` stay first."""
        if not self.augment_fragments:
            return tokens
        if fixed is None:
            raise InsertgenError("fragment augmentation needs the batch's fixed mask")
        rng = np.random.default_rng(list(seed))
        dot, bos, eos = self.vocab.token_to_id("."), self.vocab.bos_id, self.vocab.eos_id
        out = tokens.clone()
        for i, (row, fix) in enumerate(zip(tokens.tolist(), fixed.tolist())):
            start, end = row.index(bos) + 1, row.index(eos)
            given = sum(fix[start:end])
            begin = start + given + (1 if given else 0)  # after the prompt and its "."
            if begin < end:
                out[i, begin:end] = torch.tensor(bracket_safe.shuffle_fragments(row[begin:end], dot, rng))
        return out

    # -- text --------------------------------------------------------------------------------

    def parse_prompt(self, text: str) -> list[int]:
        """A fragment in bracket SAFE (attachments ``<k>``, pieces joined by ``.``), or as SMILES with
        dummy atoms ``*`` / ``[*]`` / ``[1*]`` for the attachment points (converted as the builders write
        prompts: :func:`fragments.prompt_from_smiles`) -> ids; labels are renumbered by first appearance,
        as in training. Raises InsertgenError when it is empty, does not tokenise or parse, uses a token
        outside the vocabulary, has a label used more than twice, or is longer than the block."""
        text = text.strip()
        if not text:
            raise InsertgenError(f"task {self.name} needs a fragment prompt (bracket SAFE, e.g. 'c1ccc<1>cc1', "
                                 f"or SMILES with * attachments, e.g. '*c1ccccc1')")
        if "*" in text:
            metrics.quiet_rdkit()
            text = fragments.prompt_from_smiles(text)
        text = fragments.renumber(text)
        ids = self.parse_target([], text)
        fragments.query_smarts(text)  # checks labels
        if len(ids) >= self.target_block:
            raise InsertgenError(f"the fragment has {len(ids)} tokens; task {self.name} generates at most "
                                 f"{self.target_block} tokens in all")
        return ids

    # -- metrics -----------------------------------------------------------------------------

    def _query(self, example: Example) -> tuple[str, FragmentQuery, str]:
        """(task, query, source SMILES) of an example: recorded for its group when this task built it,
        else derived from its prompt and target (attachments required, as for every task but one)."""
        if example.group not in self._groups:
            task = self.which if self.which != "all" else "prompt"
            source = bracket_safe.decode(self.format(example.target)) or ""
            return task, FragmentQuery.of(self.format(example.prompt), task), source
        return self._groups[example.group]

    def evaluate(self, examples: list[Example], outputs: list[list[int]]) -> dict[str, float]:
        """:mod:`fragment_metrics` over the prompt groups (runs of equal examples: same prompt, target and
        group), per task."""
        if len(examples) != len(outputs):
            raise InsertgenError(f"{len(examples)} examples but {len(outputs)} outputs")
        metrics.quiet_rdkit()
        groups: dict[str, list[dict]] = {}
        start = 0
        while start < len(examples):
            end = start
            while end < len(examples) and examples[end] == examples[start]:
                end += 1
            task, query, source = self._query(examples[start])
            samples = [self.to_smiles(o) for o in outputs[start:end]]
            groups.setdefault(task, []).append(fragment_metrics.group_metrics(samples, query, source))
            start = end
        result: dict[str, float] = {"n": len(examples)}
        per_task = {task: fragment_metrics.average_groups(g) for task, g in groups.items()}
        if len(per_task) == 1:
            result.update(next(iter(per_task.values())))
        else:
            for task, values in per_task.items():
                result.update({f"{task}/{k}": v for k, v in values.items()})
            for key in SUMMARY:
                vals = [v[key] for v in per_task.values() if v.get(key) == v.get(key)]
                result[key] = float(np.mean(vals)) if vals else float("nan")
        result["sample_length"] = float(np.mean([len(o) for o in outputs])) if outputs else 0.0
        return result

    def save_figure(self, examples: list[Example], outputs: list[list[int]], path: Path) -> Path | None:
        """The first prompt's source molecule and its first valid samples, beside the length histograms."""

        if not examples:
            return None
        metrics.quiet_rdkit()
        _, query, source = self._query(examples[0])
        first = [o for ex, o in zip(examples, outputs) if ex == examples[0]]
        smiles = [source] + [s if fragment_metrics.valid_molecule(s, query) is not None else None
                             for s in (self.to_smiles(o) for o in first)]
        return plot_molecule_samples(smiles, [len(o) for o in outputs], [len(ex.target) for ex in examples], path,
                                     title=f"{self.name}: source molecule, then valid samples of prompt "
                                           f"{self.format(examples[0].prompt)}")

    def config(self) -> dict:
        out = super().config()
        out.update(task=self.name, fragment_tasks=list(self.tasks), denovo_fraction=self.denovo_fraction,
                   samples_per_prompt=self.samples_per_prompt, prompts=self.prompts,
                   benchmark="data/fragment_prompts.jsonl", prompt_in_target=True)
        for key in ("test_size", "novelty_reference", "kl_reference_size"):
            out.pop(key, None)
        return out
