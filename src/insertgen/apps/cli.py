"""The ``insertgen`` command line (README.md#the-command-line): one module per subcommand in
``insertgen.apps.commands``, imported only when that subcommand runs, so that ``insertgen --help`` and
``insertgen --version`` answer without loading torch."""

from __future__ import annotations

import importlib
import os
import sys

import click

from insertgen.core.errors import InsertgenError

# glibc's default malloc thresholds make training steps several times slower on this kind of CPU
# (README.md#the-command-line); the CLI re-executes itself once with these tunables unless they are already set.
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"

# name: (module in insertgen.apps.commands, the line `insertgen --help` shows; tests/test_cli.py checks that
# it is the start of the command's own help, parenthetical remarks left out)
COMMANDS = {
    "analysis": ("analysis", "Generation order: when each target token / edge was inserted and unmasked."),
    "bench": ("bench", "Training-step time, FLOPs and MFU against the measured matmul peak, and sampling cost."),
    "demo": ("demo", "Compare every shipped model of a task side by side on fresh graphs or sampled molecules, "
                     "or train them afresh with --train."),
    "eval": ("evaluate", "Sample for the split's prompts and print the task metrics."),
    "example-data": ("example_data", "Write an example data set for `insertgen train --data`."),
    "fragment-prompts": ("fragment_prompts", "Build the fragment-constrained benchmark prompts."),
    "report": ("report", "A self-contained HTML page of a run or of a reproduce directory."),
    "reproduce": ("reproduce", "Train and evaluate the model x task grid under equal budgets, several seeds."),
    "sample": ("sample", "Generate outputs for prompts (or -n unconditional samples)."),
    "score": ("score", "Log-likelihood (or a bound on it) of each text under the model, in nats."),
    "train": ("train", "Train a model."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when one of them is asked for (by name or for its help)."""

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"insertgen.apps.commands.{COMMANDS[name][0]}").command

    def format_commands(self, ctx, formatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="insertgen")
def cli():
    """insertgen: insertion-based sequence generation with learned order."""


def main(argv: list[str] | None = None) -> None:
    if sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in os.environ and argv is None:
        env = dict(os.environ, GLIBC_TUNABLES=GLIBC_TUNABLES)
        try:
            os.execve(sys.executable, [sys.executable, "-m", "insertgen.apps.cli", *sys.argv[1:]], env)
        except OSError:
            pass
    try:
        cli.main(args=argv, prog_name="insertgen", standalone_mode=False)
    except InsertgenError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main(sys.argv[1:] if os.environ.get("GLIBC_TUNABLES") else None)
