"""The Python API (insertgen.train, insertgen.load_run -> TrainedRun): the same outputs, scores and metrics as
the CLI commands on the same run, runs trained from Python that the CLI reads, and the errors."""

from __future__ import annotations

import json
import sys

import pytest

import insertgen
from conftest import PLUGINS, call_main
from insertgen.core.errors import InsertgenError

TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def reversal(tmp_path_factory):
    """An ARM trained from Python on a list of (prompt, target) pairs."""
    out = tmp_path_factory.mktemp("api") / "reverse"
    pairs = [(" ".join(w), " ".join(reversed(w))) for w in ["123", "4567", "890", "5552", "31", "7008"] * 20]
    return insertgen.train("arm", data=pairs, out=out, steps=5, seed=0, **TINY)


def test_a_run_trained_from_python_is_a_run_directory_the_cli_reads(reversal, tmp_path, capsys):
    assert isinstance(reversal, insertgen.TrainedRun) and reversal.model.model_id == "arm"
    assert reversal.model.checkpoint_step == 5 and reversal.task.name == "sequences"
    assert reversal.config["task_options"]["train"] == str(reversal.run_dir / "data" / "train.jsonl")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "3 1 4"}) + "\n" + json.dumps({"prompt": "9 9"}) + "\n")
    assert call_main(["sample", "--run", reversal.run_dir, "--input", prompts, "--output", tmp_path / "s.jsonl",
                      "--seed", "3"]) == 0
    cli = [json.loads(line)["output"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert reversal.sample(["3 1 4", "9 9"], seed=3) == cli
    ids = reversal.encode_prompts(["3 1 4", "9 9"])
    assert reversal.sample(ids, seed=3) == cli  # token ids in, the same text out
    reopened = insertgen.load_run(reversal.run_dir)
    assert reopened.sample(["3 1 4", "9 9"], seed=3) == cli


def test_score_and_evaluate_match_the_commands(reversal, tmp_path, capsys):
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"prompt": "3 1 4", "text": "4 1 3"}) + "\n")
    assert call_main(["score", "--run", reversal.run_dir, "--input", texts, "--output", tmp_path / "sc.jsonl"]) == 0
    cli = json.loads((tmp_path / "sc.jsonl").read_text())
    mine = reversal.score(["4 1 3"], prompts=["3 1 4"])[0]
    assert mine == {k: cli[k] for k in mine} and mine["bound"] == "exact" and mine["tokens"] == 4
    capsys.readouterr()
    assert call_main(["eval", "--run", reversal.run_dir, "--limit", "6", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mine = reversal.evaluate("test", limit=6)
    assert {k: v for k, v in mine.items() if "seconds" not in k} == {k: v for k, v in cli.items() if "seconds" not in k}


def test_sampler_options_by_name_and_the_errors(reversal):
    greedy = reversal.sample(["1 2 3"], greedy=True, temperature=0.5)
    assert greedy == reversal.sample(["1 2 3"], top_k=1, seed=9)  # greedy does not depend on the seed
    with pytest.raises(InsertgenError, match="bad sampler option: temperature must be > 0"):
        reversal.sample(["1 2 3"], temperature=0.0)
    with pytest.raises(InsertgenError, match="unknown sampler option"):
        reversal.sample(["1 2 3"], beams=3)
    with pytest.raises(InsertgenError, match="is conditional: give prompts, not n"):
        reversal.sample(n=3)
    with pytest.raises(InsertgenError, match="unknown token 'x'"):
        reversal.sample(["1 x"])
    with pytest.raises(InsertgenError, match="token id 2 is not a data token"):
        reversal.sample([[5, 2]])
    with pytest.raises(InsertgenError, match="give one prompt per text"):
        reversal.score(["1 2"])
    with pytest.raises(InsertgenError, match="cannot give the log-likelihood bound 'elbo'"):
        reversal.score(["1 2"], prompts=["2 1"], bound="elbo")


def test_train_takes_a_task_object_a_file_an_unconditional_list_and_resumes(tmp_path):
    sys.path.insert(0, str(PLUGINS))
    from insertgen_toy import CopyTask

    from insertgen.tasks import unregister_task

    try:
        run = insertgen.train("ip", task=CopyTask(size=64), out=tmp_path / "copy", steps=2,
                              posterior_d_model=16, posterior_n_layers=1, posterior_n_heads=2, **TINY)
    finally:
        unregister_task("toy-copy")  # registered for this process by train(task=<a Task object>)
    assert run.task.name == "toy-copy" and len(run.sample(["1 2"])) == 1
    with pytest.raises(InsertgenError, match="task 'toy-copy' defines no reference order"):
        run.order_analysis("test", limit=4)
    star = insertgen.train("ip", task="star-tiny", out=tmp_path / "star", steps=2, posterior_d_model=16,
                           posterior_n_layers=1, posterior_n_heads=2, **TINY)
    analysis = star.order_analysis("test", limit=8)
    assert analysis["metrics"]["n"] == 8 and {"order_corr_unmask", "order_corr_examples"} <= set(analysis["order"])
    assert analysis["profile"]["kind"] == "posterior_rank"  # IP: the posterior's orders
    words = insertgen.train("mdm", data=["abc", "bca", "cab", "aab"] * 10, out=tmp_path / "words", steps=2,
                            task_options={"tokenizer": "chars"}, **TINY)
    samples = words.sample(n=3, temperature=0.7)
    assert len(samples) == 3 and all(set(s) <= set("abc") for s in samples)
    with pytest.raises(InsertgenError, match="is unconditional: give n, not prompts"):
        words.sample(["a"])
    more = insertgen.train("mdm", data=["unused"], out=tmp_path / "words", steps=4, resume=True)
    assert more.model.checkpoint_step == 4
    with pytest.raises(InsertgenError, match="already holds a run"):
        insertgen.train("mdm", data=["abc"] * 20, out=tmp_path / "words", steps=2)
    with pytest.raises(InsertgenError, match="a data item must be a text"):
        insertgen.train("arm", data=[3, 4], out=tmp_path / "bad", steps=1)
    with pytest.raises(InsertgenError, match="give task or data, not both"):
        insertgen.train("arm", task="star-tiny", data=["a"], out=tmp_path / "bad2", steps=1)
