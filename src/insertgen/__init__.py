"""insertgen: insertion-based sequence generation with learned generation order.

The package is layered (each layer imports only the ones before it; tests/test_layers.py checks it):

    core      errors, io, vocab, data, checkpoint, ema, distributed, threads, options, rundir, sampling
    nn        the Transformer trunk and heads
    models    one folder per model family, the family registry, the noise schedules they share;
              tasks: one folder per task family
    engine    train, evaluate, analysis, presets, load_run
    apps      cli, demo, bench, report, reproduce

This module is the public face above them all: ``insertgen.train(...)`` and ``insertgen.load_run(RUN_DIR)``,
which return a :class:`~insertgen.engine.trained_run.TrainedRun` (sample, score, evaluate, order_analysis), and
``register_family`` / ``register_task``.
"""

# the OpenMP wait policy must be in the environment before torch loads (insertgen/core/threads.py)
from insertgen.core.threads import apply_thread_policy as _apply_thread_policy
from insertgen.core.version import __version__

_apply_thread_policy()

__all__ = ["load_run", "train", "register_family", "register_task", "TrainedRun", "__version__"]


def load_run(run_dir, weights: str = "ema", device="cpu"):
    """The run in ``run_dir`` as a :class:`~insertgen.engine.trained_run.TrainedRun` (its model in eval mode,
    EMA weights unless ``weights="raw"``)."""
    from insertgen.engine.trained_run import TrainedRun  # loads torch: only when asked for

    return TrainedRun.open(run_dir, weights=weights, device=device)


def train(model: str, **arguments):
    """Train a model and return the run (:func:`insertgen.engine.trained_run.train` has every argument)."""
    from insertgen.engine.trained_run import train as train_run  # loads torch: only when asked for

    return train_run(model, **arguments)


def __getattr__(name: str):
    """``register_family`` (models/registry.py), ``register_task`` (tasks/__init__.py) and ``TrainedRun``,
    imported on first use: they load torch (after the thread policy above), which ``insertgen --help`` does not
    need."""
    if name == "register_family":
        from insertgen.models.registry import register_family  # loads torch: only when asked for

        return register_family
    if name == "register_task":
        from insertgen.tasks import register_task  # loads torch: only when asked for

        return register_task
    if name == "TrainedRun":
        from insertgen.engine.trained_run import TrainedRun  # loads torch: only when asked for

        return TrainedRun
    raise AttributeError(f"module 'insertgen' has no attribute {name!r}")
