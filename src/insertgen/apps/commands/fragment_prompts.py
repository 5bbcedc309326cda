"""`insertgen fragment-prompts`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.core.errors import InsertgenError
from insertgen.core.io import write_text_atomic
from insertgen.tasks.molecules.fragment_task import BENCHMARK_FILE, build_benchmark_file


@click.command(name="fragment-prompts")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output JSONL (default: the benchmark file shipped in the package).")
@click.option("--check", is_flag=True, help="Rebuild and compare with --out (or the shipped file) byte for byte.")
def fragment_prompts(out, check):
    """Build the fragment-constrained benchmark prompts (100 per task, from MOSES test molecules).
    Format: docs/formats.md#fragment-benchmark-prompts."""

    out = out or BENCHMARK_FILE
    text = build_benchmark_file()
    if check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            raise InsertgenError(f"{out} differs from the rebuilt benchmark")
        click.echo(f"{out}: identical to the rebuilt benchmark ({text.count(chr(10))} prompts)")
        return

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)
    click.echo(f"wrote {text.count(chr(10))} prompts to {out}")


command = fragment_prompts
