"""Tasks ``smiles`` and ``safe``: unconditional de novo generation of MOSES molecules.

* ``smiles``: the MOSES SMILES, split by the atom-level regex of :mod:`tokens` (24 tokens).
* ``safe``: the same molecules as **bracket SAFE** (:mod:`bracket_safe`); at training time the
  fragments of every sequence are put in a random order (``augment``, on by default, as SAFE-GPT and
  GenMol train; ``renumber_attachments`` [off] then renames the attachment labels in order of first
  appearance, so that label numbers count up along every training string as in the canonical ones).
  Molecules SAFE cannot encode (about 0.5%) are counted and left out.

Splits (options in brackets; ``--set task.KEY=VALUE``): train = ``train_size`` MOSES training
molecules drawn with ``default_rng(seed)`` [100,000; 0 = all 1,584,663], validation = 1,000 and test =
``test_size`` [5,000; 0 = all] disjoint draws from the MOSES test set. Sequences longer than the
task's block (64 SMILES / 80 SAFE tokens) are counted and left out. Text is the string itself (no
spaces between tokens); outputs decode to canonical SMILES for the metrics.

Metrics (:mod:`metrics`): validity, uniqueness, novelty against the canonical MOSES training set
(``novelty_reference="moses"``: :mod:`novelty_reference`) or the drawn training molecules (``"train"``),
both quality conventions, diversity, IntDiv, the GuacaMol KL score against ``kl_reference_size``
[10,000; 0 = no KL score] MOSES test molecules, FCD against the MOSES test statistics, and the token lengths of samples and data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from insertgen.core.cache import load_arrays, save_arrays
from insertgen.core.errors import InsertgenError
from insertgen.core.vocab import Vocab
from insertgen.tasks.base import SPLITS, Example, Task
from insertgen.tasks.molecules import bracket_safe, metrics, moses
from insertgen.tasks.molecules.novelty_reference import canonical_training_set
from insertgen.tasks.molecules.plots import plot_molecule_samples
from insertgen.tasks.molecules.tokens import MAX_ATTACHMENTS, SAFE_TOKENS, SMILES_TOKENS, tokenize

KINDS = ("smiles", "safe")
BLOCKS = {"smiles": 64, "safe": 80}
VALIDATION_SIZE = 1_000
KL_REFERENCE_SIZE = 10_000


class MoleculeTask(Task):
    """De novo molecules from MOSES as SMILES (``kind="smiles"``) or bracket SAFE (``kind="safe"``)."""

    conditional = False
    eval_size = 1_000
    headline_metrics = ("validity", "quality_all", "uniqueness", "novelty", "diversity")

    def __init__(self, kind: str, train_size: int = 100_000, test_size: int = 5_000, seed: int = 0,
                 augment: bool = True, novelty_reference: str = "moses", kl_reference_size: int = KL_REFERENCE_SIZE,
                 renumber_attachments: bool = False):
        if kind not in KINDS:
            raise ValueError(f"unknown molecule task {kind!r}; tasks: {', '.join(KINDS)}")
        if novelty_reference not in ("moses", "train"):
            raise InsertgenError(f"novelty_reference must be 'moses' or 'train', not {novelty_reference!r}")
        if train_size < 0 or test_size < 0:
            raise InsertgenError("train_size and test_size must be >= 0 (0 = the whole MOSES split)")
        if kl_reference_size < 0:
            raise InsertgenError(f"kl_reference_size must be >= 0 (0 = no KL score), not {kl_reference_size}")
        self.kind, self.name = kind, kind
        self.train_size, self.test_size, self.seed = int(train_size), int(test_size), int(seed)
        self.augment_fragments = bool(augment) and kind == "safe"
        if renumber_attachments and kind != "safe":
            raise InsertgenError("renumber_attachments applies to bracket SAFE only (task safe)")
        self.renumber_attachments = bool(renumber_attachments)
        self.novelty_reference = novelty_reference
        self.kl_reference_size = int(kl_reference_size)
        self.vocab = Vocab(SAFE_TOKENS if kind == "safe" else SMILES_TOKENS)
        self.prompt_block, self.target_block = 0, BLOCKS[kind]
        self._split_examples: dict[str, list[Example]] = {}  # each split built on first use
        self.skipped: dict[str, dict[str, int]] = {}
        self._smiles: dict[str, list[str]] = {}

    # -- data ------------------------------------------------------------------------------

    def _split_smiles(self, split: str) -> list[str]:
        """The MOSES SMILES of ``split``: the training split reads MOSES's training file, validation and test
        its test file (so evaluating a model never reads the 1.6M training molecules)."""
        if split not in self._smiles:
            malformed = self.skipped.setdefault("malformed_lines", {})
            if split == "train":
                train = moses.read_split("train")
                malformed["train"] = len(train.malformed)
                self._smiles["train"] = moses.subsample(train.strings, self.train_size, self.seed)
            else:
                test = moses.read_split("test")
                malformed["test"] = len(test.malformed)
                rest = test.strings
                order = np.random.default_rng(self.seed).permutation(len(rest))
                val_idx = np.sort(order[:VALIDATION_SIZE])
                test_idx = order[VALIDATION_SIZE:] if self.test_size == 0 else order[VALIDATION_SIZE:VALIDATION_SIZE + self.test_size]
                self._smiles["validation"] = [rest[int(i)] for i in val_idx]
                self._smiles["test"] = [rest[int(i)] for i in np.sort(test_idx)]
        return self._smiles[split]

    def _strings(self, split: str, smiles: list[str]) -> list[str]:
        """The task strings of ``smiles`` ("" where SAFE cannot encode one); SAFE conversions are cached."""
        if self.kind == "smiles":
            return smiles
        metrics.quiet_rdkit()
        name = f"bracket-safe-{split}-{len(smiles)}-{moses.strings_digest(smiles)}.txt"

        def convert() -> list[str]:

            return [bracket_safe.encode(s) or "" for s in tqdm(smiles, desc=f"SAFE {split}", mininterval=5)]

        return moses.cached_lines(name, convert, f"the bracket-SAFE forms of the {len(smiles):,} {split} molecules")

    def _build_split(self, split: str) -> list[Example]:
        """The examples of ``split``; strings SAFE cannot encode and sequences longer than the block are
        counted in ``skipped[split]`` and left out."""
        rows, unencodable, too_long = [], 0, 0
        for text in self._strings(split, self._split_smiles(split)):
            if not text:
                unencodable += 1
                continue
            ids = self.vocab.encode(tokenize(text))
            if len(ids) > self.target_block:
                too_long += 1
                continue
            rows.append(Example((), tuple(ids)))
        self.skipped[split] = {"not_encodable": unencodable, "too_long": too_long}
        return rows

    def examples(self, split: str) -> list[Example]:
        if split not in SPLITS:
            raise InsertgenError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if split not in self._split_examples:
            self._split_examples[split] = self._build_split(split)
        return list(self._split_examples[split])

    def fresh_examples(self, n: int, seed: int) -> list[Example]:
        """``n`` test-set molecules drawn with ``default_rng(seed)`` (an unconditional task has no
        generator of new examples; only their number and lengths matter)."""
        test = self.examples("test")
        idx = np.random.default_rng(seed).choice(len(test), size=min(n, len(test)), replace=False)
        return [test[int(i)] for i in idx]

    def augment(self, tokens: torch.Tensor, seed: tuple[int, int], fixed=None) -> torch.Tensor:
        """Training-time augmentation of a batch ``[BOS, x, EOS, PAD...]``: for SAFE, the fragments of
        each sequence in a random order drawn from ``default_rng(seed)`` (same tokens, same length), their
        attachment labels then renamed in order of first appearance when ``renumber_attachments`` is set
        (so the first attachment of every training string is ``<1>``, as in the canonical strings)."""
        if not self.augment_fragments:
            return tokens
        rng = np.random.default_rng(list(seed))
        dot, bos, eos = self.vocab.token_to_id("."), self.vocab.bos_id, self.vocab.eos_id
        out = tokens.clone()
        labels = self._attachment_ids() if self.renumber_attachments else None
        for i, row in enumerate(tokens.tolist()):
            start, end = row.index(bos) + 1, row.index(eos)
            shuffled = bracket_safe.shuffle_fragments(row[start:end], dot, rng)
            if labels:
                shuffled = bracket_safe.renumber_attachments(shuffled, *labels)
            out[i, start:end] = torch.tensor(shuffled)
        return out

    def _attachment_ids(self) -> tuple[dict[int, int], dict[int, int]]:
        """The vocabulary's attachment tokens ``<k>``: id -> k and k -> id."""
        label_of = {self.vocab.token_to_id(f"<{k}>"): k for k in range(1, MAX_ATTACHMENTS + 1)}
        return label_of, {k: i for i, k in label_of.items()}

    # -- text --------------------------------------------------------------------------------

    def format(self, ids) -> str:
        return "".join(self.vocab.tokens[int(i)] for i in ids if int(i) >= self.vocab.num_special)

    def parse_prompt(self, text: str) -> list[int]:
        if text.strip():
            raise InsertgenError(f"task {self.name} is unconditional: it takes no prompt")
        return []

    def parse_target(self, prompt: list[int], text: str) -> list[int]:
        """A SMILES / bracket-SAFE string -> ids; a character no token covers, or a token outside the
        task's vocabulary, raises InsertgenError naming it."""
        tokens = tokenize(text.strip())
        unknown = [t for t in tokens if self.vocab._index.get(t, -1) < self.vocab.num_special]
        if unknown:
            what = "a special token" if unknown[0] in self.vocab._index else f"not in the {self.name} vocabulary"
            raise InsertgenError(f"token {unknown[0]!r} of {text.strip()!r} is {what}")
        return self.vocab.encode(tokens)

    def to_smiles(self, ids) -> str | None:
        """Canonical SMILES of an output, or None when it is not a valid molecule."""
        text = self.format(ids)
        return bracket_safe.decode(text) if self.kind == "safe" else metrics.canonical(text)

    def token_class(self, token: str) -> str:
        """``ring`` (ring-closure digits), ``branch`` (parentheses), ``attachment`` (bracket SAFE ``<n>``),
        ``fragment`` (the ``.`` separator), ``bond`` or ``atom``."""
        if token.isdigit() or token.startswith("%"):
            return "ring"
        if token in {"(", ")"}:
            return "branch"
        if token.startswith("<"):
            return "attachment"
        if token == ".":
            return "fragment"
        if token in {"-", "=", "#", "$", ":", "/", "\\"}:
            return "bond"
        return "atom"

    # -- metrics -----------------------------------------------------------------------------

    def training_set(self) -> frozenset[str]:
        """Canonical SMILES the novelty is measured against (see ``novelty_reference``)."""
        if self.novelty_reference == "train":
            smiles = self._split_smiles("train")
            return frozenset(c for c in (metrics.canonical(s) for s in smiles) if c)
        return canonical_training_set()

    def kl_reference(self) -> dict | None:
        """The KL score's reference statistics of ``kl_reference_size`` MOSES test molecules (cached); None,
        and no KL score, when the size is 0."""
        if self.kl_reference_size == 0:
            return None
        path = moses.cache_dir() / f"kl-reference-moses-test-{self.kl_reference_size}.npz"
        stats = load_arrays(path)
        if stats is None:
            moses.announce_build(f"the KL-score reference of {self.kl_reference_size:,} MOSES test molecules", path)
            metrics.quiet_rdkit()
            smiles = moses.subsample(moses.read_split("test").strings, self.kl_reference_size, 0)
            stats = {k: np.asarray(v) for k, v in metrics.reference_stats(smiles).items()}
            save_arrays(path, stats)
        return stats

    def evaluate(self, examples: list[Example], outputs: list[list[int]]) -> dict[str, float]:
        """The metrics of :mod:`metrics` for ``outputs`` (one per sample; ``examples`` give only the
        data's lengths), plus the mean token length of samples and of the examples."""
        metrics.quiet_rdkit()
        smiles = [self.to_smiles(o) for o in outputs]
        result = metrics.molecule_metrics(smiles, self.training_set(), self.kl_reference(), moses.test_stats_fcd())
        result["sample_length"] = float(np.mean([len(o) for o in outputs])) if outputs else 0.0
        result["data_length"] = float(np.mean([len(ex.target) for ex in examples])) if examples else 0.0
        return result

    def save_figure(self, examples: list[Example], outputs: list[list[int]], path: Path) -> Path | None:
        """A grid of the first valid sampled molecules (RDKit drawing) beside the length histograms."""

        metrics.quiet_rdkit()
        smiles = [self.to_smiles(o) for o in outputs]
        return plot_molecule_samples(smiles, [len(o) for o in outputs], [len(ex.target) for ex in examples], path,
                                     title=f"{self.name}: samples")

    def config(self) -> dict:
        """What the run's config.json records of the task (de novo: every split is built first, so that
        ``skipped`` counts all three; a fragment task records only its training split's counts, as its
        validation prompts take a rebuild of the benchmark)."""
        if not self.conditional:
            for split in SPLITS:
                self.examples(split)
        return {"task": self.name, "kind": self.kind, "data": "MOSES (molsets 0.3.1 data files)",
                "train_size": self.train_size, "test_size": self.test_size, "validation_size": VALIDATION_SIZE,
                "seed": self.seed, "augment": self.augment_fragments,
                "renumber_attachments": self.renumber_attachments, "novelty_reference": self.novelty_reference,
                "kl_reference_size": self.kl_reference_size,
                "target_block": self.target_block, "vocabulary": list(self.vocab.tokens),
                "skipped": json.loads(json.dumps(self.skipped))}
