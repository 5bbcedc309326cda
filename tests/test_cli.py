"""Tests of the ``insertgen`` command line (README.md#the-command-line): the run-directory and JSONL contracts of
train / sample / eval / score, and clear one-line errors (exit code 2, no traceback) for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_TRAIN_ARGS, TINY_TRAIN_STEPS
from insertgen.core.checkpoint import load_checkpoint
from insertgen.tasks import get_task

STAR_EASY_NODES = 20  # node ids 0..19


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    """Three valid star-easy prompts (the first test graphs), as task text."""
    task = get_task("star-easy")
    return [task.format(list(ex.prompt)) for ex in task.examples("test")[:3]]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def prompt_file(path: Path, prompts: list[str]) -> Path:
    return write_lines(path, [json.dumps({"prompt": p}) for p in prompts])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_user_error(result, *fragments: str) -> str:
    """Exit code 2, one 'error: ...' message containing every fragment, no traceback, nothing on stdout
    that looks like a result. Returns stderr."""
    code, out, err = result
    assert code == 2, f"exit code {code}; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out
    assert "error" in err.lower(), err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


def assert_node_text(text: str) -> None:
    for tok in text.split():
        assert tok.isdigit() and 0 <= int(tok) < STAR_EASY_NODES, text


# ----------------------------------------------------------------------------------------------
# 1. contracts on the tiny run
# ----------------------------------------------------------------------------------------------


def test_train_writes_config_checkpoint_and_metrics(tiny_run):
    config = json.loads((tiny_run / "config.json").read_text())
    for key in ("task", "model", "model_config", "train", "seed", "environment"):
        assert key in config, key
    assert config["task"] == "star-easy" and config["model"] == "flexmdm"
    assert config["seed"] == 0
    assert config["model_config"]["d_model"] == 32 and config["model_config"]["n_layers"] == 1
    assert config["train"]["steps"] == TINY_TRAIN_STEPS and config["train"]["batch_size"] == 8
    env = config["environment"]
    assert "git_commit" in env
    assert env["git_commit"] is None or isinstance(env["git_commit"], str)
    import torch

    assert env["torch"] == torch.__version__

    tensors, state = load_checkpoint(tiny_run / "checkpoint.safetensors")
    assert state["step"] == TINY_TRAIN_STEPS
    assert any(k.startswith("model.") for k in tensors) and any(k.startswith("ema.") for k in tensors)

    records = read_jsonl(tiny_run / "metrics.jsonl")
    assert records
    for rec in records:
        assert isinstance(rec["step"], int)
        if "loss" in rec:
            assert isinstance(rec["loss"], float)
    losses = [r for r in records if "loss" in r]
    assert losses and losses[-1]["step"] == TINY_TRAIN_STEPS


def test_git_commit_is_none_when_git_rev_parse_fails(monkeypatch):
    from insertgen.core import rundir as run

    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 128, stdout="HEAD\n", stderr="fatal: ambiguous argument 'HEAD'\n")

    monkeypatch.setattr(run.subprocess, "run", fake_run)
    assert run.environment()["git_commit"] is None
    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr(run.subprocess, "run", lambda cmd, **kwargs: subprocess.CompletedProcess(cmd, 0, stdout=sha + "\n"))
    assert run.environment()["git_commit"] == sha


def test_sample_writes_one_line_per_prompt(cli, tiny_run, tmp_path, prompts):
    inp = prompt_file(tmp_path / "P.jsonl", prompts)
    out = tmp_path / "O.jsonl"
    code, stdout, err = cli("sample", "--run", tiny_run, "--input", inp, "--output", out, "--steps", 8)
    assert code == 0, err
    rows = read_jsonl(out)
    assert len(rows) == len(prompts)
    for row, prompt in zip(rows, prompts):
        assert row["prompt"] == prompt
        assert isinstance(row["output"], str)
        assert_node_text(row["output"])
        assert "canvas" not in row
    assert not (tiny_run / "samples.jsonl").exists()  # --output was honoured


def test_sample_skips_bad_lines_on_request_and_counts_them(cli, tiny_run, tmp_path, prompts):
    lines = [json.dumps({"prompt": prompts[0]}), "{not json", json.dumps({"prompt": "1 2 99 4 1 4"}),
             json.dumps({"text": "x"}), json.dumps({"prompt": prompts[1]})]
    inp = write_lines(tmp_path / "P.jsonl", lines)
    out = tmp_path / "O.jsonl"
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp, "--output", out, "--steps", 4),
                      "P.jsonl:2: malformed JSON")
    assert not out.exists()
    code, _, err = cli("sample", "--run", tiny_run, "--input", inp, "--output", out, "--steps", 4, "--skip-bad-lines")
    assert code == 0, err
    assert "P.jsonl:2: malformed JSON" in err and "P.jsonl:3: node id '99'" in err and "P.jsonl:4: missing key 'prompt'" in err
    assert "skipped 3 of 5 lines" in err
    rows = read_jsonl(out)
    assert [(r["line"], r["prompt"]) for r in rows] == [(1, prompts[0]), (5, prompts[1])]
    bad = write_lines(tmp_path / "bad.jsonl", ["[]", "{}"])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", bad, "--skip-bad-lines"),
                      "bad.jsonl has no usable line (2 skipped)")


def test_sample_trajectory(cli, tiny_run, tmp_path, prompts):
    inp = prompt_file(tmp_path / "P.jsonl", prompts)
    out = tmp_path / "O.jsonl"
    code, _, err = cli("sample", "--run", tiny_run, "--input", inp, "--output", out, "--steps", 8, "--trajectory")
    assert code == 0, err
    rows = read_jsonl(out)
    assert len(rows) == len(prompts)
    for row, prompt in zip(rows, prompts):
        assert row["prompt"] == prompt
        assert_node_text(row["output"])
        canvas = row["canvas"]
        assert isinstance(canvas, list) and canvas
        assert isinstance(row["insert_step"], list) and isinstance(row["unmask_step"], list)
        assert len(row["insert_step"]) == len(canvas) == len(row["unmask_step"])
        assert all(isinstance(s, int) and -1 <= s <= 8 for s in row["insert_step"] + row["unmask_step"])
        # the canvas holds the prompt, then the generated tokens
        assert canvas[: len(prompt.split())] == prompt.split()
        assert all(tok in canvas for tok in row["output"].split())


def test_eval_json(cli, tiny_run_copy):
    code, out, err = cli("eval", "--run", tiny_run_copy, "--limit", 5, "--json", "--steps", 8)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    metrics = json.loads(lines[0])
    assert isinstance(metrics, dict)
    assert metrics["n"] == 5
    for key in ("exact_match", "token_accuracy", "plan_validity"):
        assert 0.0 <= metrics[key] <= 1.0, key
    saved = json.loads((tiny_run_copy / "eval-test.json").read_text())
    assert saved == metrics
    assert metrics["sampler"]["grid"] == "uniform"
    # the held-out bound: FlexMDM's ELBO, in nats per sequence and per token (target tokens + the end)
    assert metrics["likelihood_bound"] == "elbo" and metrics["likelihood_examples"] == 5
    assert metrics["nats_per_seq"] > 0 and metrics["nats_per_seq_stderr"] >= 0
    lengths = [len(ex.target) + 1 for ex in get_task("star-easy").examples("test")[:5]]
    assert metrics["nats_per_token"] == pytest.approx(metrics["nats_per_seq"] * 5 / sum(lengths))
    code, out, err = cli("eval", "--run", tiny_run_copy, "--limit", 5, "--json", "--steps", 8, "--grid", "unmask",
                         "--likelihood-samples", 0)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["sampler"]["grid"] == "unmask"
    assert "nats_per_seq" not in json.loads(out.strip().splitlines()[-1])  # --likelihood-samples 0: skipped


def test_score_gives_flexmdm_elbo_with_its_error_and_refuses_other_bounds(cli, tiny_run, tmp_path, prompts):
    task = get_task("star-easy")
    example = task.examples("test")[0]
    inp = write_lines(tmp_path / "T.jsonl", [json.dumps({"prompt": prompts[0], "text": task.format(list(example.target))})])
    out = tmp_path / "S.jsonl"
    code, _, err = cli("score", "--run", tiny_run, "--input", inp, "--output", out, "--samples", 8, "--seed", 3)
    assert code == 0, err
    row = json.loads(out.read_text())
    assert row["bound"] == "elbo" and row["log_likelihood"] < 0 and row["stderr"] > 0
    assert row["tokens"] == len(example.target) + 1
    assert row["nats_per_token"] == pytest.approx(-row["log_likelihood"] / row["tokens"])
    again = tmp_path / "S2.jsonl"
    assert cli("score", "--run", tiny_run, "--input", inp, "--output", again, "--samples", 8, "--seed", 3)[0] == 0
    assert json.loads(again.read_text()) == row  # deterministic under --seed
    refused = tmp_path / "R.jsonl"
    result = cli("score", "--run", tiny_run, "--input", inp, "--output", refused, "--bound", "iwae")
    assert_user_error(result, "flexmdm", "cannot give the log-likelihood bound 'iwae'", "it supports: elbo")
    assert not refused.exists()


def test_train_resume_continues_from_the_checkpoint(cli, tiny_run_copy, monkeypatch):
    from insertgen.models.flexmdm.model import FlexMDM

    calls = []
    original = FlexMDM.loss

    def counting_loss(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FlexMDM, "loss", counting_loss)
    code, out, err = cli("train", "--resume", "--out", tiny_run_copy, "--steps", 6, "--quiet")
    assert code == 0, err
    assert len(calls) == 2  # steps 5 and 6 only: it continued from step 4
    records = read_jsonl(tiny_run_copy / "metrics.jsonl")
    assert records[0]["step"] == TINY_TRAIN_STEPS  # appended, not overwritten
    assert records[-1]["step"] == 6
    assert json.loads((tiny_run_copy / "config.json").read_text())["train"]["steps"] == 6
    _, state = load_checkpoint(tiny_run_copy / "checkpoint.safetensors")
    assert state["step"] == 6


def test_train_into_existing_run_needs_resume(cli, tiny_run_copy):
    before = (tiny_run_copy / "config.json").read_bytes()
    ckpt_before = (tiny_run_copy / "checkpoint.safetensors").read_bytes()
    result = cli(*TINY_TRAIN_ARGS, "--out", tiny_run_copy)
    assert_user_error(result, "--resume", str(tiny_run_copy))
    assert (tiny_run_copy / "config.json").read_bytes() == before
    assert (tiny_run_copy / "checkpoint.safetensors").read_bytes() == ckpt_before


# ----------------------------------------------------------------------------------------------
# 2. bad input: a clear message, exit code 2, no traceback
# ----------------------------------------------------------------------------------------------

TRAIN_FAST = ["train", "--task", "star-easy", "--model", "flexmdm", "--steps", "1", "--quiet"]


def test_unknown_task_lists_known_tasks(cli, tmp_path):
    out = tmp_path / "run"
    err = assert_user_error(cli("train", "--task", "star-bogus", "--model", "flexmdm", "--steps", 1, "--out", out),
                            "unknown task", "'star-bogus'")
    for known in ("star-easy", "star-medium", "star-hard"):
        assert known in err
    assert not out.exists()


def test_unknown_model(cli, tmp_path):
    out = tmp_path / "run"
    assert_user_error(cli("train", "--task", "star-easy", "--model", "bogus-model", "--steps", 1, "--out", out),
                      "unknown model", "'bogus-model'", "flexmdm")
    assert not out.exists()


@pytest.mark.parametrize("setting", ["model.bogus=1", "train.bogus=1", "bogus=1"])
def test_unknown_set_option(cli, tmp_path, setting):
    out = tmp_path / "run"
    assert_user_error(cli(*TRAIN_FAST, "--set", setting, "--out", out), "unknown", "bogus")
    assert not out.exists()


def test_unknown_bare_set_key_lists_training_and_model_keys(cli, tmp_path):
    """A bare key is tried as a training option, then as a model option: a key that is neither is refused
    with both lists (and the task.KEY spelling), and nothing is written."""
    out = tmp_path / "run"
    assert_user_error(cli(*TRAIN_FAST, "--set", "foo=1", "--out", out), "--set foo",
                      "unknown option, neither a training option",
                      "batch_size", "warmup_steps", "nor an option of model 'flexmdm'", "d_model", "token_shift",
                      "task.KEY")
    assert not out.exists()


def test_report_names_the_figures_it_drew(cli, tiny_run_copy):
    """``report`` writes report.html and draws into the run directory the figures it lacks; it lists them,
    and a second report, which draws nothing, lists none."""
    assert not (tiny_run_copy / "order.png").exists()
    code, out, err = cli("report", tiny_run_copy, "--examples", 1)
    assert code == 0, err
    assert f"wrote {tiny_run_copy / 'report.html'}" in out
    for name in ("order.json", "order.png"):
        assert (tiny_run_copy / name).is_file() and str(tiny_run_copy / name) in out
    code, out, _ = cli("report", tiny_run_copy, "--examples", 1)
    assert code == 0 and "drew" not in out


def test_set_without_equals(cli, tmp_path):
    assert_user_error(cli(*TRAIN_FAST, "--set", "d_model", "--out", tmp_path / "run"), "key=value", "'d_model'")


def test_prompt_node_outside_vocabulary_names_token_and_line(cli, tiny_run, tmp_path, prompts):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}),
                                             json.dumps({"prompt": "99 0 5 10 8 16 7 17 99 16"})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp, "--output", tmp_path / "O.jsonl"),
                      "P.jsonl:2", "'99'", "0..19")
    assert not (tmp_path / "O.jsonl").exists()


def test_prompt_non_integer_token(cli, tiny_run, tmp_path):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": "1 2 x 4 1 4"})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp, "--output", tmp_path / "O.jsonl"),
                      "P.jsonl:1", "'x'")


def test_prompt_odd_number_of_edge_tokens(cli, tiny_run, tmp_path, prompts):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}),
                                             json.dumps({"prompt": prompts[1]}),
                                             json.dumps({"prompt": "1 2 3 4 5"})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp, "--output", tmp_path / "O.jsonl"),
                      "P.jsonl:3", "odd number of edge tokens")


def test_empty_prompt(cli, tiny_run, tmp_path):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": "   "})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp), "P.jsonl:1", "empty prompt")


def test_empty_line_in_jsonl(cli, tiny_run, tmp_path, prompts):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}), "",
                                             json.dumps({"prompt": prompts[1]})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp), "P.jsonl:2", "empty line")


def test_malformed_json_line(cli, tiny_run, tmp_path, prompts):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}), '{"prompt": "1 2 3 4'])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp), "P.jsonl:2", "malformed JSON")


def test_json_line_missing_prompt(cli, tiny_run, tmp_path, prompts):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}), json.dumps({"text": prompts[1]})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp), "P.jsonl:2", "missing key 'prompt'")


@pytest.mark.parametrize("line, fragment", [('["1 2 3 4"]', "expected a JSON object"),
                                            ('{"prompt": 5}', "'prompt' must be a string")])
def test_json_line_of_wrong_type(cli, tiny_run, tmp_path, line, fragment):
    inp = write_lines(tmp_path / "P.jsonl", [line])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp), "P.jsonl:1", fragment)


def test_empty_input_file(cli, tiny_run, tmp_path):
    inp = tmp_path / "P.jsonl"
    inp.write_text("")
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp), "is empty", str(inp))


def test_missing_input_file(cli, tiny_run, tmp_path):
    missing = tmp_path / "nope.jsonl"
    assert_user_error(cli("sample", "--run", tiny_run, "--input", missing), str(missing), "does not exist")


def test_sample_conditional_task_needs_input(cli, tiny_run):
    assert_user_error(cli("sample", "--run", tiny_run, "-n", 2), "conditional", "--input")


@pytest.mark.parametrize("command", ["sample", "eval", "score"])
def test_run_directory_does_not_exist(cli, tmp_path, prompts, command):
    missing = tmp_path / "no-such-run"
    args = [command, "--run", missing]
    if command != "eval":
        args += ["--input", prompt_file(tmp_path / "P.jsonl", prompts[:1])]
    assert_user_error(cli(*args), str(missing), "does not exist")


def test_directory_without_config(cli, tmp_path, prompts):
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    inp = prompt_file(tmp_path / "P.jsonl", prompts[:1])
    assert_user_error(cli("sample", "--run", empty, "--input", inp), "not a run directory", "config.json")


def test_run_directory_without_checkpoint(cli, tiny_run, tmp_path, prompts):
    run = tmp_path / "config-only"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run / "config.json")
    inp = prompt_file(tmp_path / "P.jsonl", prompts[:1])
    assert_user_error(cli("sample", "--run", run, "--input", inp), "no checkpoint", str(run / "checkpoint.safetensors"))
    assert_user_error(cli("eval", "--run", run, "--limit", 1), "no checkpoint")


def test_config_json_not_valid_json(cli, tiny_run_copy):
    (tiny_run_copy / "config.json").write_text('{"task": "star-easy", ')
    assert_user_error(cli("eval", "--run", tiny_run_copy, "--limit", 1), "config.json", "not valid JSON")


def _corrupt_run(tiny_run: Path, dst: Path, how: str) -> Path:
    dst.mkdir()
    shutil.copy(tiny_run / "config.json", dst / "config.json")
    data = (tiny_run / "checkpoint.safetensors").read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    else:
        data = b"this is not a safetensors file\n" * 200
    (dst / "checkpoint.safetensors").write_bytes(data)
    return dst


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_checkpoint(cli, tiny_run, tmp_path, prompts, how):
    run = _corrupt_run(tiny_run, tmp_path / f"run-{how}", how)
    ckpt = str(run / "checkpoint.safetensors")
    inp = prompt_file(tmp_path / "P.jsonl", prompts[:1])
    assert_user_error(cli("sample", "--run", run, "--input", inp, "--output", tmp_path / "O.jsonl"),
                      "corrupt or unreadable", ckpt)
    assert_user_error(cli("eval", "--run", run, "--limit", 1), "corrupt or unreadable", ckpt)
    assert_user_error(cli("train", "--resume", "--out", run, "--steps", 6, "--quiet"), "corrupt or unreadable", ckpt)


def test_checkpoint_that_does_not_match_config(cli, tiny_run_copy):
    path = tiny_run_copy / "config.json"
    config = json.loads(path.read_text())
    config["model_config"]["d_model"] = 64
    path.write_text(json.dumps(config))
    assert_user_error(cli("eval", "--run", tiny_run_copy, "--limit", 1), "does not match")


@pytest.mark.parametrize("option", [["--top-p", "1.5"], ["--top-p", "0"], ["--top-k", "0"], ["--steps", "0"],
                                    ["--temperature", "0"], ["--confidence", "bogus"]])
def test_bad_sampler_option(cli, tiny_run, tmp_path, prompts, option):
    inp = prompt_file(tmp_path / "P.jsonl", prompts[:1])
    out = tmp_path / "O.jsonl"
    assert_user_error(cli("sample", "--run", tiny_run, "--input", inp, "--output", out, *option), option[0])
    assert not out.exists()


# Bad input that once escaped as an uncaught exception (a traceback in the real CLI) instead of
# "error: ..." and exit code 2.
@pytest.mark.parametrize("case", [
    "output-dir-missing",
    "input-not-utf8",
    "negative-seed",
    "checkpoint_every=0",
    "n_heads=3",
    "d_model=abc",
    "lr=abc",
])
def test_user_error_is_reported_not_raised(cli, tiny_run, tmp_path, prompts, case):
    train = ["train", "--task", "star-easy", "--model", "flexmdm", "--steps", "1", "--quiet", "--out", tmp_path / "r",
             "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4",
             "--set", "eval_every=0"]
    if case == "output-dir-missing":
        inp = prompt_file(tmp_path / "P.jsonl", prompts[:1])
        args = ["sample", "--run", tiny_run, "--input", inp, "--output", tmp_path / "missing-dir" / "O.jsonl",
                "--steps", "2"]
    elif case == "input-not-utf8":
        inp = tmp_path / "P.jsonl"
        inp.write_bytes(b'{"prompt": "1 2 \xff\xfe 1 2"}\n')
        args = ["sample", "--run", tiny_run, "--input", inp, "--steps", "2"]
    elif case == "negative-seed":
        args = [*train, "--seed", "-1"]
    else:
        args = [*train, "--set", case]
    assert_user_error(cli(*args))


# ----------------------------------------------------------------------------------------------
# 3. nothing already written is lost
# ----------------------------------------------------------------------------------------------


def test_failed_sample_leaves_existing_output_unchanged(cli, tiny_run, tmp_path, prompts):
    out = tmp_path / "O.jsonl"
    good = prompt_file(tmp_path / "good.jsonl", prompts)
    code, _, err = cli("sample", "--run", tiny_run, "--input", good, "--output", out, "--steps", 4)
    assert code == 0, err
    before = out.read_bytes()
    assert len(before.splitlines()) == len(prompts)

    bad = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}), json.dumps({"prompt": "1 99 2 3"})])
    assert_user_error(cli("sample", "--run", tiny_run, "--input", bad, "--output", out, "--steps", 4), "P.jsonl:2")
    assert out.read_bytes() == before
    assert not out.with_name(out.name + ".tmp").exists()


# ----------------------------------------------------------------------------------------------
# the real process: exit code and stderr without a traceback
# ----------------------------------------------------------------------------------------------


def run_subprocess(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GLIBC_TUNABLES=os.environ.get("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=4294967296"))
    return subprocess.run([sys.executable, "-m", "insertgen.apps.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_subprocess_bad_prompt_exit_code(tiny_run, tmp_path, prompts):
    inp = write_lines(tmp_path / "P.jsonl", [json.dumps({"prompt": prompts[0]}), json.dumps({"prompt": "1 2 99 3 1 3"})])
    proc = run_subprocess("sample", "--run", tiny_run, "--input", inp, "--output", tmp_path / "O.jsonl", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "P.jsonl:2" in last and "'99'" in last, proc.stderr
    assert not (tmp_path / "O.jsonl").exists()


def test_subprocess_corrupt_checkpoint_exit_code(tiny_run, tmp_path):
    run = _corrupt_run(tiny_run, tmp_path / "run", "garbage")
    proc = run_subprocess("eval", "--run", run, "--limit", 1, "--json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "corrupt or unreadable" in proc.stderr and str(run / "checkpoint.safetensors") in proc.stderr
    assert proc.stdout == ""


def test_loflexmdm_train_eval_and_analysis(cli, tmp_path):
    out = tmp_path / "lo"
    code, _, err = cli("train", "--task", "star-easy", "--model", "loflexmdm", "--steps", "3", "--set", "d_model=32",
                       "--set", "n_layers=1", "--set", "n_heads=2", "--set", "aux_d_model=16", "--set",
                       "aux_n_layers=1", "--set", "batch_size=8", "--set", "eval_every=0", "--quiet", "--out", out)
    assert code == 0, err
    code, stdout, err = cli("eval", "--run", out, "--limit", "20", "--steps", "8", "--json")
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["n"] == 20 and "order_corr_unmask" in metrics
    code, stdout, err = cli("analysis", "--run", out, "--limit", "20", "--steps", "8")
    assert code == 0, err
    report = json.loads((out / "order.json").read_text())
    assert len(report["per_example"]) == 20 and report["insertion_time_profile"]["by_position"]
    assert (out / "order.png").stat().st_size > 1000
    assert "order correlation" in stdout


@pytest.mark.parametrize("model_id", ["ip", "ao-ip"])
def test_insertion_process_train_eval_score_and_analysis(cli, tmp_path, prompts, model_id):
    out = tmp_path / model_id
    code, _, err = cli("train", "--task", "star-easy", "--model", model_id, "--steps", "3", "--set", "d_model=32",
                       "--set", "n_layers=1", "--set", "n_heads=2", "--set", "posterior_d_model=16", "--set",
                       "posterior_n_layers=1", "--set", "batch_size=8", "--set", "eval_every=0", "--quiet",
                       "--out", out)
    assert code == 0, err
    code, stdout, err = cli("eval", "--run", out, "--limit", "10", "--json")
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["n"] == 10 and 0.0 <= metrics["termination_rate"] <= 1.0
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"prompt": prompts[0], "text": "1 2 2 3"}) + "\n")
    values = {}
    for bound in ("exact", "elbo", "iwae"):
        code, _, err = cli("score", "--run", out, "--input", texts, "--bound", bound, "--samples", "8",
                           "--output", tmp_path / f"{bound}.jsonl")
        assert code == 0, err
        row = json.loads((tmp_path / f"{bound}.jsonl").read_text())
        assert row["bound"] == bound and row["text"] == "1 2 2 3"
        values[bound] = row["log_likelihood"]
    # bounds of log p(x) in expectation; an 8-sample estimate may pass it by its Monte-Carlo noise, which is
    # small for a barely trained decoder (its p(order | x) is nearly uniform: measured up to 3e-4 nats here)
    assert values["elbo"] <= values["exact"] + 0.01 and values["iwae"] <= values["exact"] + 0.05
    code, stdout, err = cli("analysis", "--run", out, "--limit", "10")
    assert code == 0, err
    assert (out / "order.png").is_file() and "order correlation" in stdout


@pytest.mark.parametrize("model_id,bound", [("arm", "exact"), ("mdm", "elbo")])
def test_baseline_train_sample_eval_score(cli, tmp_path, prompts, model_id, bound):
    out = tmp_path / model_id
    code, _, err = cli("train", "--task", "star-easy", "--model", model_id, "--steps", "3", "--set", "d_model=32",
                       "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8", "--set", "eval_every=0",
                       "--quiet", "--out", out)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    if model_id == "mdm":
        assert config["model_config"]["target_len"] == 14  # the task's target block
    inp = tmp_path / "prompts.jsonl"
    inp.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    code, _, err = cli("sample", "--run", out, "--input", inp, "--top-p", "0.9", "--output", tmp_path / "s.jsonl")
    assert code == 0, err
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == len(prompts)
    code, stdout, err = cli("eval", "--run", out, "--limit", "10", "--json")
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["n"] == 10 and "exact_match" in metrics and "order_corr_unmask" in metrics
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"prompt": prompts[0], "text": "1 2 2 3"}) + "\n")
    code, _, err = cli("score", "--run", out, "--input", texts, "--output", tmp_path / "scores.jsonl")
    assert code == 0, err
    row = json.loads((tmp_path / "scores.jsonl").read_text())
    assert row["bound"] == bound and row["log_likelihood"] < 0
    other = "elbo" if bound == "exact" else "exact"
    code, _, err = cli("score", "--run", out, "--input", texts, "--bound", other)
    assert code == 2 and f"cannot give the log-likelihood bound {other!r}" in err
    too_long = tmp_path / "long.jsonl"
    too_long.write_text(json.dumps({"prompt": prompts[0], "text": " ".join(["1"] * 40)}) + "\n")
    code, _, err = cli("score", "--run", out, "--input", too_long, "--output", tmp_path / "long-scores.jsonl")
    assert code == 2 and "long.jsonl:1: the text has 40 tokens, more than the 14" in err
    assert not (tmp_path / "long-scores.jsonl").exists()
    mixed = write_lines(tmp_path / "mixed.jsonl", [json.dumps({"prompt": prompts[0], "text": " ".join(["1"] * 40)}),
                                                   json.dumps({"prompt": prompts[0], "text": "1 2 2 3"})])
    code, _, err = cli("score", "--run", out, "--input", mixed, "--output", tmp_path / "m.jsonl", "--skip-bad-lines")
    assert code == 0 and "skipped 1 of 2 lines" in err
    (row,) = read_jsonl(tmp_path / "m.jsonl")
    assert row["line"] == 2 and row["log_likelihood"] < 0


def test_report_is_one_self_contained_html_page(cli, tiny_run_copy):
    """report writes RUN_DIR/report.html: well-formed, every image a data URI, nothing fetched from
    elsewhere, with the run's options, its evaluation and step-by-step trajectories."""
    from html.parser import HTMLParser

    assert cli("eval", "--run", tiny_run_copy, "--limit", 5, "--json", "--steps", 8)[0] == 0
    code, out, err = cli("report", "--run", tiny_run_copy, "--examples", 2)
    assert code == 0, err
    page = (tiny_run_copy / "report.html").read_text()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sources, self.open = [], []

        def handle_starttag(self, tag, attrs):
            self.sources += [v for k, v in attrs if k in ("src", "href")]
            if tag not in ("meta", "img", "br"):
                self.open.append(tag)

        def handle_endtag(self, tag):
            assert self.open and self.open.pop() == tag, tag

    parser = Collect()
    parser.feed(page)
    assert not parser.open  # every element closed, in order
    assert parser.sources and all(s.startswith("data:image/png;base64,") for s in parser.sources)
    assert "<script" not in page and "eval-test" in page and "exact_match" in page
    assert page.count('class="traj"') == 2 and "<td>step " in page and 'class="revealed"' in page


# ----------------------------------------------------------------------------------------------
# one module per subcommand, loaded when asked for
# ----------------------------------------------------------------------------------------------


def test_the_top_level_help_lists_every_command_with_the_start_of_its_own_help():
    import importlib
    import re

    from insertgen.apps.cli import COMMANDS

    for name, (module, line) in COMMANDS.items():
        command = importlib.import_module(f"insertgen.apps.commands.{module}").command
        assert command.name == name
        own = " ".join(command.help.split())
        start = line.rstrip(".")
        assert own.startswith(start) or re.sub(r" \(.*?\)", "", own).startswith(start), (name, line, own[:120])


def test_help_and_version_answer_without_loading_torch():
    code = ("import sys; from insertgen.apps.cli import main\n"
            "for args in (['--help'], ['--version']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Commands:" in result.stdout and "fragment-prompts" in result.stdout
