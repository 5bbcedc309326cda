"""insertgen: insertion-based sequence generation with learned generation order."""

__version__ = "0.1.0"


def load_run(run_dir, weights: str = "ema", device="cpu"):
    """The trained model of a run directory (eval mode, EMA weights); see :func:`insertgen.run.load_run`."""
    from insertgen.run import load_run as _load_run

    return _load_run(run_dir, weights=weights, device=device)


__all__ = ["load_run", "__version__"]
