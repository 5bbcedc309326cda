"""The soak benchmark (benchmarks/soak.py): its growth and drift figures against runs whose slopes are known, the
step it reads from a run's metrics, and a watch of a real child process that grows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import soak  # noqa: E402


def _samples(minutes: int, rss_at, step_at, cpu_share: float = 1.0) -> list[dict]:
    return [{"t_s": 60.0 * m, "cpu_s": 60.0 * m * cpu_share, "rss_mb": rss_at(m), "step": step_at(m)}
            for m in range(minutes + 1)]


def test_growth_and_drift_are_the_slopes_after_the_warm_up():
    # 1,000 MiB after the warm-up, +50 MiB per hour (5% of 1,000); during the warm-up a jump that must not count.
    # Steps: 120 a minute throughout, so the step time is 0.5 s and its drift 0.
    samples = _samples(70, lambda m: 400.0 + 60 * m if m < 10 else 1000.0 + 50 * (m - 10) / 60, lambda m: 120 * m)
    s = soak.summarise(samples, warmup_min=10)
    assert s["rss_growth_pct_per_h"] == pytest.approx(5.0, rel=1e-6)
    assert s["rss_growth_second_half_pct_per_h"] == pytest.approx(5.0, rel=1e-6)  # a leak: to the end
    assert s["median_step_time_s"] == pytest.approx(0.5)
    assert s["step_time_drift_pct_per_h"] == pytest.approx(0.0, abs=1e-9)
    # the last minute (70) is left out: training ends within it
    assert s["rss_start_mb"] == 1000.0 and s["steps"] == [1200, 8280] and s["window_min"] == 59.0


def test_slowing_steps_show_as_drift_and_samples_without_progress_are_not_training():
    # the step time doubles over the hour after the warm-up; then 10 minutes of evaluation (no new step)
    steps, step = [0], 0
    for m in range(1, 71):
        step += 120 if m <= 10 else round(120 / (1 + (m - 10) / 60))
        steps.append(step)
    steps += [step] * 10
    samples = _samples(80, lambda m: 1000.0, lambda m: steps[m], cpu_share=0.5)
    train = soak.training_samples(samples)
    assert len(train) == 70 and all(t["t_s"] <= 70 * 60 for t in train)
    assert train[0]["step_cpu_s"] == pytest.approx(train[0]["step_time_s"] / 2)
    s = soak.summarise(samples, warmup_min=10)
    assert s["rss_growth_pct_per_h"] == 0.0
    assert s["step_time_drift_pct_per_h"] > 50  # 0.5 s -> 1 s over the hour
    assert s["step_cpu_drift_pct_per_h"] == pytest.approx(s["step_time_drift_pct_per_h"])
    assert s["median_step_cpu_s"] == pytest.approx(s["median_step_time_s"] / 2)
    # the minute in which training ended (70) is left out, and the ten minutes of evaluation after it
    assert s["watched_min"] == 80.0 and s["training_min"] == 68.0 and s["steps"][1] == steps[69]


def test_memory_that_settles_after_the_warm_up_grows_in_the_first_half_only():
    # +60 MiB over the 20 minutes after the warm-up, then flat for 40: not a leak
    samples = _samples(71, lambda m: 1000.0 + 3 * min(max(m - 10, 0), 20), lambda m: 100 * m)
    s = soak.summarise(samples, warmup_min=10)
    assert s["rss_growth_pct_per_h"] > 2  # the fit over the whole window sees the ramp
    assert s["rss_growth_second_half_pct_per_h"] == pytest.approx(0.0, abs=1e-9)


def test_a_coarse_step_log_is_read_over_several_samples():
    # 75 steps a minute logged every 50 steps: one minute shows 50 or 100 steps (0.6 or 1.2 s), five ~0.8 s
    samples = _samples(40, lambda m: 1000.0, lambda m: 50 * (75 * m // 50))
    one = [t["step_time_s"] for t in soak.training_samples(samples, span=1)]
    five = [t["step_time_s"] for t in soak.training_samples(samples)[5:]]
    assert min(one) == pytest.approx(0.6) and max(one) == pytest.approx(1.2)
    assert all(abs(t - 0.8) < 0.1 for t in five)


def test_too_short_a_run_gives_no_figures():
    s = soak.summarise(_samples(11, lambda m: 1.0, lambda m: m), warmup_min=10)
    assert "rss_growth_pct_per_h" not in s and "fewer than 3" in s["note"]


def test_logged_step_is_the_last_training_record(tmp_path):
    assert soak.logged_step(tmp_path) is None
    (tmp_path / "metrics.jsonl").write_text("\n".join([
        json.dumps({"step": 20, "loss": 1.0}), json.dumps({"step": 40, "loss": 0.9}),
        json.dumps({"step": 40, "split": "validation", "nll": 1.0}),
        json.dumps({"step": 41, "skipped": "non-finite loss or gradient"}), '{"step": 60, "lo']) + "\n")
    assert soak.logged_step(tmp_path) == 40


def test_a_watched_command_that_grows_is_recorded_sample_by_sample(tmp_path):
    # a child that logs a step and keeps 4 MiB more every 0.08 s, for 0.8 s
    child = ("import json, time\nkeep = []\nfor step in range(1, 11):\n"
             "    keep.append(b'x' * (4 << 20))\n"
             f"    open({str(tmp_path / 'metrics.jsonl')!r}, 'a').write(json.dumps({{'step': step}}) + '\\n')\n"
             "    time.sleep(0.08)\n")
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--label", "toy", "--run-dir",
                           str(tmp_path), "--out", str(out), "--interval", "0.15", "--", sys.executable, "-c", child],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    samples = record["samples"]
    assert record["exit"] == 0 and len(samples) >= 3
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert [s["cpu_s"] for s in samples] == sorted(s["cpu_s"] for s in samples)
    assert samples[-1]["rss_mb"] - samples[0]["rss_mb"] > 12  # at least three more 4 MiB blocks held
    logged = [s["step"] for s in samples if s["step"] is not None]
    assert logged == sorted(logged) and logged[-1] > logged[0] >= 1


def test_watching_needs_a_process_and_a_run(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--label", "x", "--out",
                           str(tmp_path / "o.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--run-dir" in proc.stderr
