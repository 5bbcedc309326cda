"""docs/formats.md: every documented input example is accepted by the command that reads it, the
documented output keys are what the commands write, and every link the CLI's help gives into it exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import call_main

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "docs" / "formats.md"
SMALL = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4",
         "--set", "eval_every=0", "--quiet"]
# a tiny run of each task the examples name, trained for one step (the examples must parse, not be good)
TASK_RUN_ARGS = {
    "star-easy": [],
    "maze-perfect-easy": [],
    "smiles": ["--set", "task.train_size=200", "--set", "task.test_size=20"],
    "fragment-linker": ["--set", "task.train_size=200", "--set", "task.samples_per_prompt=2",
                        "--set", "task.prompts=2"],
}


def examples(kind: str) -> list[tuple[str, dict]]:
    """``[(task, object)]`` of every ``<!-- example KIND TASK -->`` block of docs/formats.md."""
    found = re.findall(r"<!-- example (\w+) ([\w-]+) -->\s*```json\n(.*?)\n```", FORMATS.read_text(), re.S)
    return [(task, json.loads(line)) for k, task, line in found if k == kind]


def section(heading: str) -> str:
    text = FORMATS.read_text()
    start = text.index(f"### {heading}\n")
    end = text.find("\n### ", start + 1)
    return text[start:end if end > 0 else None]


def documented_line(heading: str) -> dict:
    """The first JSON line of a section's code block."""
    block = re.search(r"```json\n(.*?)\n", section(heading))
    return json.loads(block.group(1))


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory) -> dict[str, Path]:
    runs = {}
    for task, extra in TASK_RUN_ARGS.items():
        run = tmp_path_factory.mktemp("formats") / task
        model = "arm" if task in ("smiles", "fragment-linker") else "ip"
        assert call_main(["train", "--task", task, "--model", model, "--steps", "1", "--out", run, *SMALL,
                          *extra]) == 0
        runs[task] = run
    return runs


def test_the_document_has_examples_of_each_input_kind():
    assert {t for t, _ in examples("prompt")} >= {"star-easy", "maze-perfect-easy", "fragment-linker"}
    assert {t for t, _ in examples("text")} >= {"star-easy", "maze-perfect-easy", "smiles"}


def run_on_example(command: str, run: Path, obj: dict, folder: Path, *options: str) -> dict:
    """``insertgen COMMAND --run RUN --input FILE --output OUT OPTIONS`` on the one-line input ``obj``; the
    output line it writes."""
    inp, out = folder / f"{command}-in.jsonl", folder / f"{command}-out.jsonl"
    inp.write_text(json.dumps(obj) + "\n")
    assert call_main([command, "--run", run, "--input", inp, "--output", out, *options]) == 0, (run, obj)
    return json.loads(out.read_text())


def test_every_documented_prompt_is_accepted_by_sample(task_runs, tmp_path):
    for task, obj in examples("prompt"):
        row = run_on_example("sample", task_runs[task], obj, tmp_path, "--steps", "2")
        assert row["prompt"] == obj["prompt"] and isinstance(row["output"], str)
        # the documented keys of a sample line are what sample writes (molecules add smiles)
        documented = set(documented_line("Samples")) | ({"smiles"} if task.startswith("fragment") else set())
        assert set(row) == documented, (task, set(row))


def test_every_documented_text_is_accepted_by_score(task_runs, tmp_path):
    documented = set(documented_line("Scores"))
    for task, obj in examples("text"):
        row = run_on_example("score", task_runs[task], obj, tmp_path, "--samples", "1")
        assert {k: row[k] for k in obj} == obj  # the input's keys come back unchanged, the id included
        assert set(row) - set(obj) == documented - {"prompt", "text", "id"}, (task, set(row))


def test_the_documented_evaluation_keys_are_written(tiny_run_copy):
    assert call_main(["eval", "--run", tiny_run_copy, "--limit", "3", "--steps", "2", "--json",
                      "--likelihood-samples", "1"]) == 0
    written = json.loads((tiny_run_copy / "eval-test.json").read_text())
    documented = documented_line("Evaluation")
    # the documented line comes from an IP run, which also reports its termination rate
    assert set(documented) - {"termination_rate"} == set(written), set(written) ^ set(documented)


def test_eval_json_is_strict_json_when_a_metric_is_undefined(task_runs, capsys):
    """A one-step fragment model writes no valid molecule, so the distance to the source is undefined: the
    printed line and eval-test.json say null where Python would write NaN (docs/formats.md#evaluation)."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    run = task_runs["fragment-linker"]
    capsys.readouterr()
    assert call_main(["eval", "--run", run, "--limit", "4", "--steps", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1], parse_constant=refuse)
    written = json.loads((run / "eval-test.json").read_text(), parse_constant=refuse)
    assert printed["validity"] == 0.0 and printed["distance"] is None and written["distance"] is None


def test_every_link_of_the_cli_help_into_the_formats_exists():
    headings = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", FORMATS.read_text(), re.M)}
    cli_text = "".join(path.read_text() for path in (ROOT / "src" / "insertgen" / "apps" / "commands").glob("*.py"))
    anchors = re.findall(r"docs/formats\.md#([\w-]+)", cli_text)
    assert len(anchors) >= 8
    assert set(anchors) <= headings, set(anchors) - headings
