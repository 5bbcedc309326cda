"""benchmarks/claim_from_decodings.py: a claim judged from decoding sweeps, on hand-made rows."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from claim_from_decodings import main  # noqa: E402


def _decoding(path: Path, n: int, rows: list[tuple[str, float, float, float]]) -> Path:
    """A decoding file: rows (run, temperature, validity, quality_all), ``n`` samples each."""
    path.write_text(json.dumps({"settings": {"n": n}, "rows": [
        {"run": run, "temperature": t, "confidence": "top_prob", "validity": v, "quality_all": q}
        for run, t, v, q in rows]}))
    return path


def _verdicts(tmp_path, capsys, *args) -> dict:
    out = tmp_path / "claim.json"
    assert main([*map(str, args), "--out", str(out)]) == 0
    assert "| validity |" in capsys.readouterr().out
    return {v["metric"]: v["verdict"] for v in json.loads(out.read_text())["verdicts"]}


def test_a_claim_holds_is_reversed_or_is_not_shown_by_the_grid_rule(tmp_path, capsys):
    rows = [("runs/lo-s0", 0.3, 0.62, 0.58), ("runs/lo-s1", 0.3, 0.60, 0.50), ("runs/lo-s0", 1.0, 0.1, 0.1),
            ("runs/flex-s0", 0.3, 0.50, 0.52), ("runs/flex-s1", 0.3, 0.52, 0.56)]
    first = _decoding(tmp_path / "a.json", 500, rows[:3])
    second = _decoding(tmp_path / "b.json", 500, rows[3:])
    sides = ["--decoding", first, "--decoding", second, "--where", "temperature=0.3"]
    # validity: 61% vs 51% on 500 samples a seed (2 s.e. about 4.4 points), every seed above: holds;
    # quality: 54% vs 54%, the seeds interleave: not shown
    verdicts = _verdicts(tmp_path, capsys, *sides, "--a", "lo-s0", "--a", "lo-s1", "--b", "flex-s0", "--b", "flex-s1",
                         "--metric", "validity", "--metric", "quality_all")
    assert verdicts == {"validity": "holds", "quality_all": "not shown"}
    verdicts = _verdicts(tmp_path, capsys, *sides, "--a", "flex-s0", "--a", "flex-s1", "--b", "lo-s0", "--b", "lo-s1")
    assert verdicts == {"validity": "reversed"}
    # the same gap measured on 20 samples a seed is within the noise
    small = [_decoding(tmp_path / f"{name}-small.json", 20, part) for name, part in (("a", rows[:3]), ("b", rows[3:]))]
    verdicts = _verdicts(tmp_path, capsys, "--decoding", small[0], "--decoding", small[1], "--where", "temperature=0.3",
                         "--a", "lo-s0", "--a", "lo-s1", "--b", "flex-s0", "--b", "flex-s1")
    assert verdicts == {"validity": "not shown"}


def test_a_run_must_select_exactly_one_row_and_the_files_must_agree_on_n(tmp_path, capsys):
    rows = [("runs/lo-s0", 0.3, 0.6, 0.5), ("runs/lo-s0", 1.0, 0.1, 0.1), ("runs/flex-s0", 0.3, 0.5, 0.5)]
    path = _decoding(tmp_path / "a.json", 500, rows)
    with pytest.raises(SystemExit, match="2 decoding rows of run 'lo-s0' with no --where"):
        main(["--decoding", str(path), "--a", "lo-s0", "--b", "flex-s0"])
    with pytest.raises(SystemExit, match="0 decoding rows of run 'ip-s0' with temperature=0.3"):
        main(["--decoding", str(path), "--a", "ip-s0", "--b", "flex-s0", "--where", "temperature=0.3"])
    other = _decoding(tmp_path / "b.json", 300, rows)
    with pytest.raises(SystemExit):
        main(["--decoding", str(path), "--decoding", str(other), "--a", "lo-s0", "--b", "flex-s0"])
    assert "share one sample count n, got [300, 500]" in capsys.readouterr().err
