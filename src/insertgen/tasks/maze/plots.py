"""Drawing mazes and the plans generated for them."""

from __future__ import annotations

from pathlib import Path

from insertgen.core.figures import pyplot


def _number_subgoals(ax, maze, subgoals: list[int], fontsize: int) -> None:
    """The subgoals on ``ax`` as numbered circles, in order (0 = start)."""
    for k, cell in enumerate(subgoals):
        r, c = divmod(cell, maze.size)
        ax.text(c, r, str(k), ha="center", va="center", fontsize=fontsize, color="white",
                bbox={"boxstyle": "circle,pad=0.15", "fc": "tab:purple", "ec": "none"})


def _maze_panels(maze, n: int, max_cols: int, width: float, height: float):
    """``(plt, fig, axes)``: a grid of ``n`` panels (at most ``max_cols`` a row, each ``width`` x ``height``
    inches, axes hidden), the maze drawn in each of the first ``n`` (walls dark)."""
    cols = min(max_cols, max(1, n))
    rows = (max(1, n) + cols - 1) // cols
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(~maze.open, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
    return plt, fig, axes


def _save(plt, fig, path: Path, title: str) -> Path:
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_maze_plans(maze, panels: list[dict], path: Path, title: str = "") -> Path:
    """One panel per plan: the maze (walls dark), the reference plan dashed, the generated plan in green
    when valid and red otherwise, the subgoals numbered in order (0 = start). A panel may carry a
    ``label`` (e.g. the model), written before its verdict."""
    plt, fig, axes = _maze_panels(maze, len(panels), 3, 3.6, 3.9)
    for ax, panel in zip(axes.flat, panels):
        for key, style in (("reference", {"color": "tab:blue", "lw": 1.2, "ls": "--", "alpha": 0.7}),
                           ("plan", {"color": "tab:red" if panel["problem"] else "tab:green", "lw": 2.0})):
            cells = [divmod(c, maze.size) for c in panel[key] if 0 <= c < maze.size * maze.size]
            if cells:
                ax.plot([c for _, c in cells], [r for r, _ in cells], **style)
        _number_subgoals(ax, maze, panel["subgoals"], fontsize=7)
        verdict = "valid" if panel["problem"] is None else panel["problem"]
        verdict = f"{panel['label']}: {verdict}" if panel.get("label") else verdict
        ax.set_title(verdict if len(verdict) < 48 else verdict[:45] + "...", fontsize=7)
    return _save(plt, fig, path, f"{title}: generated plan (green valid / red invalid), reference dashed" if title else "")


def plot_plan_growth(maze, subgoals: list[int], frames: list[tuple[int, list[int | None]]], path: Path,
                     title: str = "") -> Path:
    """A generation trajectory drawn as the plan growing: one panel per frame ``(step, cells)``, the plan's
    cells in canvas order as squares (``None``: a mask, a cell not yet decided, drawn at neither place), those
    decided by that step filled, the subgoals numbered in order."""
    plt, fig, axes = _maze_panels(maze, len(frames), 4, 2.8, 3.0)
    for ax, (step, cells) in zip(axes.flat, frames):
        shown = [divmod(c, maze.size) for c in cells if c is not None and 0 <= c < maze.size * maze.size]
        if shown:
            ax.scatter([c for _, c in shown], [r for r, _ in shown], marker="s", s=28, color="tab:orange")
        _number_subgoals(ax, maze, subgoals, fontsize=6)
        masks = sum(1 for c in cells if c is None)
        ax.set_title(f"step {step}: {len(shown)} cells" + (f", {masks} masks" if masks else ""), fontsize=7)
    return _save(plt, fig, path, title)
