"""What several subcommands share: the --threads and --skip-bad-lines options, --set parsing, reading a
user's JSONL input with line-numbered errors, comma-separated lists."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.core.errors import InsertgenError
from insertgen.core.io import (
    parse_jsonl_line,
    read_jsonl_lines,
)
from insertgen.core.options import parse_assignments


def parse_set(pairs: tuple[str, ...]) -> dict[str, object]:
    return parse_assignments(pairs, "--set")


THREADS = click.option(
    "--threads", default=None, metavar="N|auto",
    help="Threads to compute with. Default (auto): every core this process may use (its CPU affinity), fewer "
         "while other processes keep cores busy; a fixed N gives bit-identical results run to run. "
         "OMP_NUM_THREADS, when set, fixes it too.")


RUN_DIR = click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
SPLIT = click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True)

SKIP_BAD_LINES = click.option(
    "--skip-bad-lines", is_flag=True,
    help="Skip input lines that cannot be used (each reported, then counted) instead of stopping at the "
         "first; output lines then carry the input's line number as \"line\".")


def read_inputs(path: Path, required: tuple[str, ...], parse, lenient: bool) -> list[tuple[int, dict, object]]:
    """``[(line number, JSON object, parse(object))]`` for a user's JSONL file whose objects carry the
    ``required`` string keys, every problem named by file and line; ``lenient`` skips bad lines, reports
    each on stderr and counts them."""

    def parse_line(line: str):
        obj = parse_jsonl_line(line, required)
        return obj, parse(obj)

    parsed, skipped = read_jsonl_lines(path, parse_line, lenient=lenient)
    for message in skipped:
        click.echo(f"skipped {message}", err=True)
    if skipped:
        click.echo(f"skipped {len(skipped)} of {len(parsed) + len(skipped)} lines of {path}", err=True)
    return [(lineno, obj, value) for lineno, (obj, value) in parsed]

def csv_list(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise InsertgenError(f"{what}: give a comma-separated list")
    return items
