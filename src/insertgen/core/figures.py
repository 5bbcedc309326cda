"""Drawing figures to files."""

from __future__ import annotations


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported when a figure is drawn (it is slow to
    import and most commands draw nothing)."""
    import matplotlib  # heavy: imported only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn

    return plt
