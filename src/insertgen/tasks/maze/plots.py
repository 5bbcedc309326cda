"""Drawing mazes and the plans generated for them."""

from __future__ import annotations

from pathlib import Path

from insertgen.core.figures import pyplot


def plot_maze_plans(maze, panels: list[dict], path: Path, title: str = "") -> Path:
    """One panel per plan: the maze (walls dark), the reference plan dashed, the generated plan in green
    when valid and red otherwise, the subgoals numbered in order (0 = start)."""
    n = max(1, len(panels))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        ax.imshow(~maze.open, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
        for key, style in (("reference", dict(color="tab:blue", lw=1.2, ls="--", alpha=0.7)),
                           ("plan", dict(color="tab:red" if panel["problem"] else "tab:green", lw=2.0))):
            cells = [divmod(c, maze.size) for c in panel[key] if 0 <= c < maze.size * maze.size]
            if cells:
                ax.plot([c for _, c in cells], [r for r, _ in cells], **style)
        for k, cell in enumerate(panel["subgoals"]):
            r, c = divmod(cell, maze.size)
            ax.text(c, r, str(k), ha="center", va="center", fontsize=7, color="white",
                    bbox=dict(boxstyle="circle,pad=0.15", fc="tab:purple", ec="none"))
        verdict = "valid" if panel["problem"] is None else panel["problem"]
        ax.set_title(verdict if len(verdict) < 48 else verdict[:45] + "...", fontsize=7)
    if title:
        fig.suptitle(f"{title}: generated plan (green valid / red invalid), reference dashed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
