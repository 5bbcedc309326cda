"""IP's posterior order at the end of learning-speed runs made before their points recorded it.

    python benchmarks/posterior_order.py DIR [DIR ...]      # learning-speed output directories of IP runs

For each directory whose ``run/`` checkpoint is at the step of its last point, loads the EMA weights and
computes ``posterior_order_corr`` exactly as ``learning_speed.py`` now does at every point (the mean
Spearman correlation of the posterior's ranks with the distance from the junction, 4 orders drawn per
target on the first 100 test graphs; ``insertgen.engine.analysis.posterior_order_profile``), and stores it in
that last point of ``learning.json``. Directories of other models, or whose checkpoint is at another
step, are reported and left alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import POSTERIOR_EXAMPLES, POSTERIOR_SAMPLES
from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint
from insertgen.core.io import write_text_atomic
from insertgen.engine.analysis import posterior_order_profile


def backfill(out: Path) -> float | None:
    path = out / "learning.json"
    record = json.loads(path.read_text())
    last = record["points"][-1]
    step = load_checkpoint(out / "run" / CHECKPOINT)[1].get("step")
    if step != last["step"]:
        print(f"{out}: checkpoint at step {step}, last point at {last['step']}: left alone")
        return None
    model = load_run(out / "run")
    task = model.task
    with torch.inference_mode():
        profile = posterior_order_profile(model, task, task.examples("test")[:POSTERIOR_EXAMPLES], POSTERIOR_SAMPLES)
    if profile is None:
        print(f"{out}: {model.model_id} has no learned posterior: left alone")
        return None
    last["posterior_order_corr"] = profile["rank_distance_corr"]
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    print(f"{out}: step {last['step']}, posterior_order_corr {profile['rank_distance_corr']:+.3f}")
    return profile["rank_distance_corr"]


if __name__ == "__main__":
    torch.set_num_threads(1)
    for directory in sys.argv[1:]:
        backfill(Path(directory))
