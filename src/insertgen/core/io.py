"""Reading the user's JSONL files with errors that name the file, the line and the problem; writing
strict JSON (no ``NaN``)."""

from __future__ import annotations

import errno
import json
import math
from contextlib import contextmanager
from pathlib import Path

from insertgen.core.errors import InsertgenError


def iter_lines(path: str | Path):
    """``(line number, text)`` of each line of a UTF-8 file, read as a stream (the file is never held in
    memory whole); a missing file or a line that is not UTF-8 raises InsertgenError naming ``path:line``."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InsertgenError(f"input file {path} does not exist") from None
    except OSError as e:  # a folder, no permission to read it
        raise InsertgenError(f"cannot read input file {path} ({e.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise InsertgenError(f"{path}:{lineno}: not valid UTF-8 text") from None


def parse_jsonl_line(line: str, required: tuple[str, ...] = ()) -> dict:
    """One JSONL line -> its object; raises InsertgenError with the problem (without the location)."""
    if not line.strip():
        raise InsertgenError("empty line (expected one JSON object per line)")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InsertgenError(f"malformed JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise InsertgenError(f"expected a JSON object, got {type(obj).__name__}")
    for key in required:
        if key not in obj:
            raise InsertgenError(f"missing key {key!r}")
        if not isinstance(obj[key], str):
            raise InsertgenError(f"{key!r} must be a string")
    return obj


def read_jsonl_lines(path: str | Path, parse, lenient: bool = False) -> tuple[list[tuple[int, object]], list[str]]:
    """``[(line number, parse(line))]`` for the lines of ``path``. A line that ``parse`` refuses (with
    InsertgenError) raises InsertgenError naming ``path:line``; with ``lenient`` it is skipped instead and
    its message returned in the second list. A file without any usable line is an error either way."""
    path = Path(path)
    parsed, skipped = [], []
    for lineno, line in iter_lines(path):
        try:
            parsed.append((lineno, parse(line)))
        except InsertgenError as e:
            if not lenient:
                raise InsertgenError(f"{path}:{lineno}: {e}") from None
            skipped.append(f"{path}:{lineno}: {e}")
    if not parsed:
        raise InsertgenError(f"input file {path} is empty" if not skipped else
                             f"input file {path} has no usable line ({len(skipped)} skipped)")
    return parsed, skipped


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Objects of a JSONL file; blank lines, malformed JSON, non-objects and missing or non-string
    ``required`` keys raise InsertgenError naming ``path:line``."""
    parsed, _ = read_jsonl_lines(path, lambda line: parse_jsonl_line(line, required))
    return [obj for _, obj in parsed]


def strict(value):
    """``value`` with every non-finite float (NaN, +-inf) replaced by None, in nested dicts, lists and tuples:
    JSON has no NaN, and strict readers (``JSON.parse``, jq, most non-Python parsers) refuse the ``NaN`` that
    Python writes by default. Where a metric is undefined the documentation says why (docs/formats.md)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a NumPy / torch scalar
        return strict(value.item())
    return value


def to_json(value, **options) -> str:
    """``json.dumps`` of :func:`strict` ``(value)``: undefined numbers are written as ``null``, never ``NaN``."""
    return json.dumps(strict(value), allow_nan=False, **options)


# Fault injection for the tests of full disks and I/O errors (tests/test_disk_faults.py): an OSError put here
# under a write site's name ("checkpoint", "metrics", "text", "plot") is raised by that site's next write.
FAULTS: dict[str, OSError] = {}


@contextmanager
def writing(path, site: str, leftovers=()):
    """Around one write of ``path`` (of kind ``site``): an OSError (a full disk, an I/O error, no permission)
    becomes one InsertgenError naming the file and the errno, after the temporary ``leftovers`` are removed;
    whatever the write replaces atomically is left as it was."""
    try:
        fault = FAULTS.pop(site, None)
        if fault is not None:
            raise fault
        yield
    except OSError as e:
        for leftover in leftovers:
            try:
                Path(leftover).unlink(missing_ok=True)
            except OSError:
                pass
        name = errno.errorcode.get(e.errno, "?") if e.errno is not None else "?"
        raise InsertgenError(f"cannot write {path}: {e.strerror or e} ({name}); what was written before it is "
                             "intact") from None


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place, so a failure never leaves
    half a file (and readers see the old or the new content, never a mix); a failure is one InsertgenError
    (:func:`writing`)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, "text", leftovers=(tmp,)):
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows atomically (temporary file, then rename), so a failure never leaves half a file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InsertgenError(f"cannot write {path}: directory {path.parent} does not exist")
    write_text_atomic(path, "".join(to_json(row) + "\n" for row in rows))
