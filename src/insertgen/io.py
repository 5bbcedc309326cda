"""Reading the user's JSONL files with errors that name the file, the line and the problem."""

from __future__ import annotations

import json
from pathlib import Path

from insertgen.errors import InsertgenError


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Objects of a JSONL file; blank lines, malformed JSON, non-objects and missing or non-string
    ``required`` keys raise InsertgenError naming ``path:line``."""
    path = Path(path)
    if not path.is_file():
        raise InsertgenError(f"input file {path} does not exist")
    rows = []
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        lineno = path.read_bytes()[: e.start].count(b"\n") + 1
        raise InsertgenError(f"{path}:{lineno}: not valid UTF-8 text") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise InsertgenError(f"{path}:{lineno}: empty line (expected one JSON object per line)")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InsertgenError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise InsertgenError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        for key in required:
            if key not in obj:
                raise InsertgenError(f"{path}:{lineno}: missing key {key!r}")
            if not isinstance(obj[key], str):
                raise InsertgenError(f"{path}:{lineno}: {key!r} must be a string")
        rows.append(obj)
    if not rows:
        raise InsertgenError(f"input file {path} is empty")
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write rows atomically (temporary file, then rename), so a failure never leaves half a file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InsertgenError(f"cannot write {path}: directory {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    tmp.replace(path)
