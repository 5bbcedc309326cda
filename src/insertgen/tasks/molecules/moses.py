"""The MOSES molecule sets, offline, from the data files inside the ``molsets`` wheel.

``pip install --no-deps molsets==0.3.1`` puts ``moses/dataset/data/{train,test,test_scaffolds}.csv.gz``
(1,584,663 / 176,074 / 176,225 SMILES, header ``SMILES``) and ``test_stats.npz`` on disk. ``import
moses`` fails on a current stack, so the package directory is located without importing it.

Every line is checked: an empty line, a line with more than one field or with whitespace inside, and
a SMILES the tokeniser cannot split are *malformed*; they are counted, listed (file and line number)
and left out, never dropped silently. Derived data (the checked lines, bracket-SAFE conversions, canonical forms,
reference statistics) is cached under ``$INSERTGEN_CACHE`` (default ``~/.cache/insertgen``), keyed by what it was
computed from.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from insertgen.core.cache import cache_dir, read_cache_text, write_cache_text
from insertgen.core.errors import InsertgenError
from insertgen.tasks.molecules.requirements import DEV_INSTALL
from insertgen.tasks.molecules.tokens import TOKEN_PATTERN, is_tokenizable, tokenize

FILES = {"train": "train.csv.gz", "test": "test.csv.gz", "test_scaffolds": "test_scaffolds.csv.gz"}
SIZES = {"train": 1_584_663, "test": 176_074, "test_scaffolds": 176_225}


def data_dir() -> Path:
    """``moses/dataset/data`` of the installed molsets wheel; a clear error when it is missing."""
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise InsertgenError("the MOSES data is not installed: run `pip install --no-deps molsets==0.3.1` "
                             "(its import is broken on current libraries, but only its data files are used; "
                             f"in a checkout, `{DEV_INSTALL}` installs it itself when ARGS name a molecule task)")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data"
    if not (path / FILES["train"]).is_file():
        raise InsertgenError(f"{path} lacks {FILES['train']}: reinstall molsets==0.3.1")
    return path


def announce_build(what: str, path: Path) -> None:
    """Say on stderr what a first use is building and where it will be kept (it may take minutes; a
    progress bar follows)."""
    print(f"building {what} (first use only; cached as {path})", file=sys.stderr, flush=True)


def cached_lines(name: str, compute, what: str) -> list[str]:
    """Lines of cache file ``name`` in :func:`cache_dir`, computed by ``compute()`` (a list of strings) and
    written atomically when absent, after saying so (``what`` it builds: :func:`announce_build`)."""
    path = cache_dir() / name
    cached = read_cache_text(path)
    if cached is not None:
        return cached.split("\n")
    announce_build(what, path)
    lines = compute()
    write_cache_text(path, "\n".join(lines))
    return lines


def strings_digest(strings: list[str]) -> str:
    """sha256 (first 16 hex digits) of the strings joined by newlines: names a cache built from them."""
    return hashlib.sha256("\n".join(strings).encode()).hexdigest()[:16]


@dataclass
class MosesSplit:
    """The SMILES of one MOSES file and the lines that were left out (``(line number, text, why)``)."""

    name: str
    strings: list[str]
    malformed: list[tuple[int, str, str]] = field(default_factory=list)


_WHITESPACE = re.compile(r"\s")  # the characters str.isspace() accepts


def parse_lines(lines, source: str) -> MosesSplit:
    """Check a ``SMILES`` CSV given as lines (header first); see the module docstring."""
    lines = iter(lines)
    header = next(lines, "").strip()
    if header != "SMILES":
        raise InsertgenError(f"{source}: the first line should be the header 'SMILES', got {header[:40]!r}")
    strings, malformed = [], []
    for lineno, line in enumerate(lines, start=2):
        text = line.rstrip("\r\n")
        if not text.strip():
            malformed.append((lineno, text, "empty line"))
        elif "," in text or _WHITESPACE.search(text):
            malformed.append((lineno, text, "more than one field or whitespace inside the SMILES"))
        elif is_tokenizable(text):
            strings.append(text)
        else:
            try:
                tokenize(text)
                raise AssertionError("unreachable: the two tokeniser checks disagree")
            except InsertgenError as e:
                malformed.append((lineno, text, str(e)))
    return MosesSplit(source, strings, malformed)


_SPLITS: dict[str, MosesSplit] = {}


def checked_split_cache(path: Path) -> Path:
    """Where the checked lines of data file ``path`` are kept: named by the file's absolute path, size and
    modification time and by the tokeniser's pattern, so that a changed file or tokeniser is checked again."""
    stat = path.stat()
    key = f"{path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}\n{TOKEN_PATTERN.pattern}"
    return cache_dir() / f"moses-checked-{path.name.split('.')[0]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.txt"


def _parse_file(path: Path) -> MosesSplit:
    """:func:`parse_lines` of a data file, through :func:`checked_split_cache`: the first read checks every
    line (about 10 s for the 1.6M training molecules) and keeps the result (first line: the number of
    accepted SMILES and the malformed lines, as JSON; then one accepted SMILES per line), later reads load it
    (well under a second); a cache file that is damaged or holds fewer lines than its header says is rebuilt."""
    cache = checked_split_cache(path)
    cached = read_cache_text(cache)
    if cached is not None:
        try:
            header, _, body = cached.partition("\n")
            kept = json.loads(header)
            strings = body.split("\n") if body else []
            if len(strings) == kept["accepted"]:
                return MosesSplit(str(path), strings, [tuple(row) for row in kept["malformed"]])
        except (ValueError, TypeError, KeyError):  # a damaged cache file (not UTF-8, a broken header)
            pass
        # ... or a truncated one: check the data file again
    with gzip.open(path, "rt", encoding="utf-8") as f:
        split = parse_lines(f, str(path))
    header = json.dumps({"accepted": len(split.strings), "malformed": split.malformed})
    write_cache_text(cache, "\n".join([header, *split.strings]))
    return split


def read_split(name: str) -> MosesSplit:
    """All SMILES of MOSES split ``name`` (``train``, ``test`` or ``test_scaffolds``), kept per process and
    on disk (:func:`_parse_file`)."""
    if name not in FILES:
        raise InsertgenError(f"unknown MOSES split {name!r}; splits: {', '.join(FILES)}")
    if name not in _SPLITS:
        path = data_dir() / FILES[name]
        try:
            _SPLITS[name] = _parse_file(path)
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise InsertgenError(f"{path} is unreadable ({type(e).__name__}: {e})") from None
    return _SPLITS[name]


def subsample(strings: list[str], size: int, seed: int) -> list[str]:
    """``size`` strings drawn without replacement by ``default_rng(seed)``, in file order (all when
    ``size`` is 0 or at least the number of strings)."""
    if size <= 0 or size >= len(strings):
        return list(strings)
    keep = np.sort(np.random.default_rng(seed).choice(len(strings), size=size, replace=False))
    return [strings[int(i)] for i in keep]


_FCD_STATS: dict[Path, tuple[np.ndarray, np.ndarray]] = {}


def test_stats_fcd() -> tuple[np.ndarray, np.ndarray]:
    """The FCD reference statistics (ChemNet activations' mean and covariance) of the MOSES test set,
    as shipped in ``test_stats.npz`` (an object array: it is read with ``allow_pickle`` from the
    installed molsets package only); read once per process and data directory (read-only arrays)."""
    path = data_dir() / "test_stats.npz"
    if path not in _FCD_STATS:
        stats = np.load(path, allow_pickle=True)["stats"].item()
        mu, sigma = np.array(stats["FCD"]["mu"]), np.array(stats["FCD"]["sigma"])
        mu.flags.writeable = sigma.flags.writeable = False
        _FCD_STATS[path] = (mu, sigma)
    return _FCD_STATS[path]


def print_smiles_tokens() -> None:  # pragma: no cover - the command that produced tokens.SMILES_TOKENS
    """Print every SMILES token of the MOSES training split, most frequent first."""

    counts: Counter = Counter()
    for smiles in read_split("train").strings:
        counts.update(tokenize(smiles))
    print(tuple(tok for tok, _ in counts.most_common()))


if __name__ == "__main__":  # pragma: no cover
    print_smiles_tokens()
