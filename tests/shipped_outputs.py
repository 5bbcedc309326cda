"""The outputs of every shipped model on fixed inputs under a fixed seed, with the sampler settings it ships
with: what tests/test_shipped_outputs.py holds them to, so that a change of the samplers or the models'
bookkeeping that is meant to change nothing provably changes nothing.

    python tests/shipped_outputs.py            # print the outputs
    python tests/shipped_outputs.py --write    # record them in tests/data/shipped_outputs.json (after a change
                                               # that is meant to change them, saying why in the commit)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "src" / "insertgen" / "pretrained"
RECORD = Path(__file__).resolve().parent / "data" / "shipped_outputs.json"
N = 4  # outputs per model: the first N inputs the demo would show it (fresh problems, or benchmark prompts)
SEED = 7


def shipped_names() -> list[str]:
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / "checkpoint.safetensors").is_file())


def outputs(name: str) -> list[str]:
    """The ``N`` outputs of shipped model ``name``, as the task's text, sampled with its shipped settings."""
    import torch

    from insertgen.apps.demo import demo_examples
    from insertgen.engine.evaluate import generate
    from insertgen.engine.run import load_run

    model = load_run(PRETRAINED / name)
    examples = demo_examples(model.task, N, 0)
    with torch.inference_mode():
        outs, _ = generate(model, [list(e.prompt) for e in examples], model.sampler_options, seed=SEED,
                           prompt_in_target=model.task.prompt_in_target)
    return [model.task.format(o) for o in outs]


def main(argv: list[str]) -> None:
    record = {name: outputs(name) for name in shipped_names()}
    if "--write" in argv:
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {RECORD}")
    else:
        print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
