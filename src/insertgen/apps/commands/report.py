"""`insertgen report`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.report import build_report
from insertgen.apps.reproduce.grid import SETTINGS
from insertgen.core.errors import InsertgenError


@click.command(name="report")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run or reproduce directory (the same as the argument).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file (default DIRECTORY/report.html).")
@click.option("--examples", type=click.IntRange(min=0), default=None,
              help="Generation trajectories to show (default: 3 for a run, 1 per model for a reproduce grid).")
@click.option("--seed", type=int, default=0, show_default=True)
def report(directory, run_dir, out, examples, seed):
    """A self-contained HTML page of a run (curves, evaluations, learned order, trajectories) or of a
    reproduce directory (its tables and claims, and per task what each model does).

    Writes DIRECTORY/report.html (or --out); figures the page needs and the directory lacks (training.png,
    order.json / order.png, schedule.png) are drawn into the run directory first, and the
    command lists them. Formats: docs/formats.md."""

    if (directory is None) == (run_dir is None):
        raise InsertgenError("give the directory to report on, either as the argument or as --run (not both)")
    path = Path(directory or run_dir)
    if examples is None:
        examples = 1 if (path / SETTINGS).is_file() else 3
    before = _file_times(path)
    page = build_report(path, out, examples, seed)
    drawn = [p for p, t in _file_times(path).items() if before.get(p) != t and p != page]
    click.echo(f"wrote {page}" + (f"; drew what the page shows and {path} lacked: "
                                  f"{', '.join(str(p) for p in sorted(drawn))}" if drawn else ""))


def _file_times(directory: Path) -> dict[Path, int]:
    """Modification time of every file under ``directory`` (what a command wrote there is what changed)."""
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()} if directory.is_dir() else {}


command = report
