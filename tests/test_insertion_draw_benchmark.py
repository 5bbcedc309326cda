"""benchmarks/insertion_draw.py: every draw x grid x confidence is scored and each wrong output counted
once, as too short, too long or a wrong token."""

import importlib.util
import json
import sys
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "insertion_draw", Path(__file__).resolve().parents[1] / "benchmarks" / "insertion_draw.py")
insertion_draw = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(insertion_draw)


def test_every_setting_is_scored_and_failures_partition_the_wrong_outputs(tiny_run, tmp_path, monkeypatch):
    saved = {}
    monkeypatch.setattr(insertion_draw, "save", lambda name, payload: saved.update(name=name, payload=payload))
    monkeypatch.setattr(sys, "argv", ["insertion_draw.py", str(tiny_run), "--n", "6", "--steps", "3",
                                      "--fresh", "5", "--confidence", "none", "top_prob", "--name", "t"])
    insertion_draw.main()
    rows = saved["payload"]["results"]
    assert saved["name"] == "insertion_draw-t"
    assert len(rows) == 3 * 2 * 2  # draws x grids x confidence
    assert {r["insertion_draw"] for r in rows} == {"poisson", "binomial", "sequence"}
    for r in rows:
        wrong = r["length_short"] + r["length_long"] + r["tokens"]
        assert wrong == round(r["n"] * (1 - r["exact_match"])) and r["examples"] == "fresh seed 5"
    json.dumps(saved["payload"])  # what is saved is JSON


def test_failure_kinds_names_how_each_output_is_wrong():
    class Ex:
        def __init__(self, target):
            self.target = target

    kinds = insertion_draw.failure_kinds([Ex([1, 2, 3])] * 4, [[1, 2, 3], [1, 2], [1, 2, 3, 4], [1, 9, 3]])
    assert kinds == {"length_short": 1, "length_long": 1, "tokens": 1}
