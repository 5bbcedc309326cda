"""Run under torchrun by tests/test_distributed.py and benchmarks/ddp_parity.py: every rank trains each model given on the command line
for a few steps (the same code path as `insertgen train`) and saves its own final parameters, so the test
can compare the ranks with each other and with a single process.

    python -m torch.distributed.run --standalone --nproc_per_node 2 benchmarks/ddp_worker.py OUT '{"MODEL": {OVERRIDES}, ...}'
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from insertgen.core.distributed import barrier, init_world, shutdown
from insertgen.engine.training_run import prepare_run


def main() -> None:
    out, runs = Path(sys.argv[1]), json.loads(sys.argv[2])
    world, device = init_world("cpu")
    torch.set_num_threads(1)
    for model, overrides in runs.items():
        _, trainer = prepare_run(task="star-easy", model=model, preset=None, steps=None, out=out / model, seed=7,
                                 overrides=overrides, resume=False, device=device, world=world)
        trainer.train(progress=False)
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()},
                  str(out / model / f"rank{world.rank}.safetensors"))
    barrier(world)
    shutdown()


if __name__ == "__main__":
    main()
