"""insertgen: insertion-based sequence generation with learned generation order."""

__version__ = "0.1.0"

# the OpenMP wait policy must be in the environment before torch loads (insertgen/threads.py)
from insertgen.threads import apply_thread_policy as _apply_thread_policy  # noqa: E402

_apply_thread_policy()


def load_run(run_dir, weights: str = "ema", device="cpu"):
    """The trained model of a run directory (eval mode, EMA weights); see :func:`insertgen.run.load_run`."""
    from insertgen.run import load_run as _load_run

    return _load_run(run_dir, weights=weights, device=device)


__all__ = ["load_run", "__version__"]
