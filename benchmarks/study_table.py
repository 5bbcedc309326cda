"""What the study tables (benchmarks/molecule_table.py, benchmarks/maze_table.py) share: a run's change as
its ``--set`` options, the first point at which a metric reached a threshold, and writing a table into a
document between its markers."""

from __future__ import annotations

import json
from pathlib import Path

EVALUATION_KEYS = {"eval_every", "log_every", "checkpoint_every"}


def change(settings: dict) -> str:
    """The run's ``--set`` options without the benchmark's own logging and evaluation ones, led by
    ``preset=NAME`` when the run was given another preset than its task's own (``--preset``); "(preset)"
    if neither (the preset is then named by its task and model)."""
    try:
        from learning_speed import default_preset
    except ImportError:
        from benchmarks.learning_speed import default_preset
    sets = {k: v for k, v in settings["overrides"].items() if k not in EVALUATION_KEYS}
    parts = [f"{k}={v}" for k, v in sorted(sets.items())]
    preset = settings.get("preset")
    if preset and preset != default_preset(settings["task"], settings["model"]):
        parts.insert(0, f"preset={preset}")
    return ", ".join(parts) or "(preset)"


def first_at(points: list[dict], threshold: float, value) -> dict | None:
    """The first point whose ``value(point)`` (None = not measured there) is at least ``threshold``."""
    for p in points:
        v = value(p)
        if v is not None and v >= threshold:
            return p
    return None


def records(root: Path) -> list[dict]:
    """Every ``learning.json`` directly under ``root``'s subdirectories, with its directory as ``_dir``."""
    return [{**json.loads(p.read_text()), "_dir": p.parent.name} for p in sorted(root.glob("*/learning.json"))]


def splice(doc: Path, blocks: dict[str, str]) -> None:
    """Replace the text of ``doc`` between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` with ``blocks[NAME]``
    for every name, writing nothing unless the document has every pair of markers."""
    content = doc.read_text()
    missing = [name for name in blocks if f"<!-- {name}:begin -->" not in content or f"<!-- {name}:end -->" not in content]
    if missing:
        raise SystemExit(f"error: {doc} has no {' / '.join(f'<!-- {m}:begin -->' for m in missing)} ... markers")
    for name, text in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, rest = content.split(begin, 1)
        _, tail = rest.split(end, 1)
        content = f"{head}{begin}\n{text}\n{end}{tail}"
    doc.write_text(content)


def run_table_command(argv, doc: str, marker: str, table, figure, figure_help: str, more: dict | None = None) -> None:
    """The command line both study tables share: ``ROOT [--docs DOC] [--figure PNG]``; prints the table of
    ``table(root)``, draws ``figure(root, png)`` when asked and writes the table between ``marker``'s markers;
    ``more`` maps further markers to further tables of the same runs (printed and written likewise)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--docs", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None, help=figure_help)
    args = parser.parse_args(argv)
    if args.figure:
        print(f"wrote {figure(args.root, args.figure)}")
    blocks = {marker: table(args.root), **{name: make(args.root) for name, make in (more or {}).items()}}
    print("\n\n".join(blocks.values()))
    if args.docs:
        splice(args.docs, blocks)
