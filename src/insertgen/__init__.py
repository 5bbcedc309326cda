"""insertgen: insertion-based sequence generation with learned generation order.

The package is layered (each layer imports only the ones before it; tests/test_layers.py checks it):

    core      errors, io, vocab, data, checkpoint, ema, distributed, threads, options, rundir, sampling
    nn        the Transformer trunk and heads
    models    one folder per model family, the family registry, the noise schedules they share;
              tasks: one folder per task family
    engine    train, evaluate, analysis, presets, load_run
    apps      cli, demo, bench, report, reproduce

This module is the public face above them all: ``insertgen.load_run(RUN_DIR)``.
"""

# the OpenMP wait policy must be in the environment before torch loads (insertgen/core/threads.py)
from insertgen.core.threads import apply_thread_policy as _apply_thread_policy
from insertgen.core.version import __version__

_apply_thread_policy()

__all__ = ["load_run", "register_family", "register_task", "__version__"]


def __getattr__(name: str):
    """``insertgen.load_run``, ``register_family`` (models/registry.py) and ``register_task`` (tasks/__init__.py),
    imported on first use: they load torch (after the thread policy above), which ``insertgen --help`` does not
    need."""
    if name == "load_run":
        from insertgen.engine.run import load_run  # loads torch: only when asked for

        return load_run
    if name == "register_family":
        from insertgen.models.registry import register_family  # loads torch: only when asked for

        return register_family
    if name == "register_task":
        from insertgen.tasks import register_task  # loads torch: only when asked for

        return register_task
    raise AttributeError(f"module 'insertgen' has no attribute {name!r}")
