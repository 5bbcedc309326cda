"""`insertgen example-data`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.core.io import write_jsonl
from insertgen.tasks.sequences.examples import EXAMPLES


@click.command(name="example-data")
@click.argument("name", type=click.Choice(sorted(EXAMPLES)))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The JSONL file to write.")
@click.option("-n", "n", type=click.IntRange(min=1), default=20_000, show_default=True, help="Problems to write.")
@click.option("--digits", type=click.IntRange(1, 9), default=3, show_default=True, help="Most digits of a number.")
@click.option("--seed", type=int, default=0, show_default=True)
def example_data(name, out, n, digits, seed):
    """Write an example data set for `insertgen train --data` (docs/formats.md#your-own-sequences): addition,
    two numbers digit by digit as the prompt and their sum as the target (tasks/sequences/examples.py)."""
    rows = EXAMPLES[name](n=n, digits=digits, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(out, rows)
    click.echo(f"wrote {len(rows):,} {name} problems to {out}")


command = example_data
