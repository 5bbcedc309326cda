"""insertgen: insertion-based sequence generation with learned generation order.

The package is layered (each layer imports only the ones before it; tests/test_layers.py checks it):

    core      errors, io, vocab, data, checkpoint, ema, distributed, threads, options, rundir, sampling
    nn        the Transformer trunk and heads; schedules (insertgen.schedules)
    models    one folder per model family and the family registry;  tasks: one folder per task family
    engine    train, evaluate, analysis, presets, load_run
    apps      cli, demo, bench, report, reproduce

This module is the public face above them all: ``insertgen.load_run(RUN_DIR)``.
"""

# the OpenMP wait policy must be in the environment before torch loads (insertgen/core/threads.py)
from insertgen.core.threads import apply_thread_policy as _apply_thread_policy
from insertgen.core.version import __version__

_apply_thread_policy()

from insertgen.engine.run import load_run  # noqa: E402  (loads torch: after the thread policy)

__all__ = ["load_run", "__version__"]
