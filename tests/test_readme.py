"""The README's commands exist: every ``insertgen`` subcommand and option its code blocks and inline code
use is in that subcommand's ``--help``; the demo leaves the repository's git status clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import call_main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# ``insertgen SUB ...`` (also ``.venv/bin/insertgen``, ``-m insertgen.apps.cli``, ``scripts/dev.py run --``)
COMMAND = re.compile(r"(?:^|\s|`)(?:\S*/)?(?:insertgen|-m insertgen\.apps\.cli|scripts/dev\.py run --)"
                     r"\s+([a-z][\w-]*)(.*)")


def readme_commands(path: Path = README) -> list[str]:
    """Every ``insertgen ...`` command line of the README (or another page, ``path``): in code blocks
    (continuation lines joined) and in inline code; ``python -m insertgen.apps.cli`` and ``scripts/dev.py
    run --`` count as ``insertgen``."""
    text = path.read_text()
    lines = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`([^`\n]*insertgen [^`\n]*)`", re.sub(r"```.*?```", "", text, flags=re.S))
    commands = []
    for line in lines:
        line = line.split("#", 1)[0]
        for match in COMMAND.finditer(line):
            commands.append(f"{match.group(1)} {match.group(2)}".strip())
    return commands


def help_text(capsys, *args) -> str:
    capsys.readouterr()
    assert call_main([*args, "--help"]) == 0, args
    return capsys.readouterr().out


def test_the_readme_shows_the_cli_and_how_to_reach_it():
    commands = readme_commands()
    assert {c.split()[0] for c in commands} >= {"demo", "train", "sample", "eval", "score", "analysis", "bench",
                                                "reproduce", "report", "fragment-prompts"}
    text = README.read_text()
    assert ".venv/bin/insertgen" in text and "source .venv/bin/activate" in text and "scripts/dev.py run" in text


def test_every_subcommand_and_option_of_the_readme_exists(capsys):
    """The README's commands and those of docs/cli.md (every subcommand in detail)."""
    top = help_text(capsys)
    checked = 0
    for command in readme_commands() + readme_commands(ROOT / "docs" / "cli.md"):
        sub, rest = (command.split(None, 1) + [""])[:2]
        assert re.search(rf"^\s+{re.escape(sub)}\b", top, re.M), f"insertgen {sub}: no such subcommand"
        options = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", rest))
        if not options:
            continue
        sub_help = help_text(capsys, sub)
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", sub_help), \
                f"README: `insertgen {command}` uses {option}, which `insertgen {sub} --help` does not list"
            checked += 1
    assert checked > 40


def test_the_demo_leaves_the_repository_clean(tmp_path, monkeypatch):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def status() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout

    default_out = ROOT / "insertgen-demo"
    kept = tmp_path / "kept"
    if default_out.exists():  # a demo the developer ran: set it aside and bring it back untouched
        shutil.move(default_out, kept)
    before = status()
    monkeypatch.chdir(ROOT)
    try:
        assert call_main(["demo", "--models", "ip", "-n", "3"]) == 0
        assert (default_out / "demo.json").is_file()
        assert status() == before
    finally:
        shutil.rmtree(default_out, ignore_errors=True)
        if kept.exists():
            shutil.move(kept, default_out)


def test_the_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    """The README's Python blocks: the first on the shipped star-easy FlexMDM instead of a demo directory
    prints a path of the graph, sampled with the run's own settings (the shipped model's greedy,
    confidence-ordered sampler) and the exact match of 50 test graphs; the second trains on a list of pairs
    (here for 20 steps instead of 300) and writes a run directory the CLI reads."""
    from insertgen.apps.demo import pretrained_dir

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 2 and 'load_run("insertgen-demo")' in blocks[0] and "insertgen.train(" in blocks[1]
    namespace: dict = {}
    shipped = repr(str(pretrained_dir("flexmdm", "star-easy")))
    exec(blocks[0].replace('"insertgen-demo"', shipped), namespace)  # noqa: S102
    run = namespace["run"]
    assert run.sampler_options.top_k == 1 and run.sampler_options.confidence == "top_prob"
    sample, exact = capsys.readouterr().out.splitlines()
    path = eval(sample)[0].split()  # noqa: S307
    assert len(path) == 8 and all(token.isdigit() for token in path) and 0.5 <= float(exact) <= 1.0
    monkeypatch.chdir(tmp_path)
    exec(blocks[1].replace("steps=300", "steps=20"), {})  # noqa: S102
    printed = capsys.readouterr().out
    assert printed.startswith("['") and float(printed.split()[-1]) > 0
    config = json.loads((tmp_path / "runs" / "reverse" / "config.json").read_text())
    assert config["task"] == "sequences" and config["train"]["steps"] == 20
    assert (tmp_path / "runs" / "reverse" / "data" / "train.jsonl").is_file()


def test_the_test_command_runs_both_tiers_and_fast_only_the_default_one():
    """`scripts/dev.py test` (the README's and CI's command) selects the slow tier too; `--fast` keeps
    pyproject's default (`-m 'not slow'`); an explicit -m is the caller's."""
    import importlib.util
    import tomllib

    spec = importlib.util.spec_from_file_location("dev", ROOT / "scripts" / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    assert dev.test_tiers(["-x"]) == ["-m", "slow or not slow", "-x"]
    assert dev.test_tiers(["--fast", "-x"]) == ["-x"]
    assert dev.test_tiers(["-m", "slow"]) == ["-m", "slow"] and dev.test_tiers(["-mslow"]) == ["-mslow"]
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert pytest_options["addopts"] == "-m 'not slow'"
    assert "python3 scripts/dev.py test --fast" in README.read_text()
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("python3 scripts/dev.py test")


def test_every_slow_tier_entry_names_a_test_that_exists():
    """tests/conftest.py's SLOW_TESTS: each entry's file defines the test it names (a renamed or removed
    test would otherwise fall silently into the default tier, or its entry linger)."""
    from conftest import SLOW_TESTS

    for entry in SLOW_TESTS:
        path, name = entry.split("::", 1)
        name = name.split("[", 1)[0]
        assert re.search(rf"^def {re.escape(name)}\(", (ROOT / "tests" / path).read_text(), re.M), entry


def test_the_repository_stays_small_enough_to_clone():
    """No tracked file over 1 MB outside the shipped weights (src/insertgen/pretrained/) and the runs in
    progress; those runs' tracked files (an unfinished run's one checkpoint, records) 100 MB at most; the
    shipped models 30 MB at most, every one stored as 8-bit integers (scripts/ship_pretrained.py)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    sizes = {}
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if path.is_file():  # a file deleted in the working tree but not yet in the index is not counted
            sizes[name] = path.stat().st_size
    large = sorted(name for name, size in sizes.items() if size > 1_000_000
                   and not name.startswith(("src/insertgen/pretrained/", "runs-in-progress/")))
    assert not large, f"tracked files over 1 MB: {large}"
    in_progress = sum(size for name, size in sizes.items() if name.startswith("runs-in-progress/"))
    assert in_progress <= 100_000_000, f"runs-in-progress/ holds {in_progress / 1e6:.0f} MB"
    shipped = sum(size for name, size in sizes.items() if name.startswith("src/insertgen/pretrained/"))
    assert shipped <= 30_000_000, f"the shipped models hold {shipped / 1e6:.0f} MB"


MARKDOWN_LINK = re.compile(r"(?<!\!)\[[^\]\n]*\]\(([^)\s]+)\)|!\[[^\]\n]*\]\(([^)\s]+)\)")


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown text's headings: lower case, punctuation dropped, spaces as dashes."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_link_of_the_readme_and_docs_reaches_a_file_and_heading():
    """Relative links and images of README.md and docs/**/*.md name files that exist, and a #fragment names
    a heading of its target; web links are not fetched (the tests run offline)."""
    broken, checked = [], 0
    for doc in [README, *sorted((ROOT / "docs").rglob("*.md"))]:
        text = doc.read_text()
        for match in MARKDOWN_LINK.finditer(re.sub(r"```.*?```", "", text, flags=re.S)):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            checked += 1
            path_part, _, fragment = target.partition("#")
            path = (doc.parent / path_part).resolve() if path_part else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and path.suffix == ".md" and fragment not in _anchors(path.read_text()):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
    assert checked >= 30  # the pattern finds the links (README.md and docs/ hold several dozen)
    assert _anchors("## The command line\n### Star sizes (tiny, small)") == {"the-command-line", "star-sizes-tiny-small"}
