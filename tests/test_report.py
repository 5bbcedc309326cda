"""The report pages render in headless Chromium: a screenshot that is not blank, and no console error.

Needs the Python package playwright (test extra) and a Chromium: $INSERTGEN_CHROMIUM, else chromium /
chromium-browser / google-chrome on the PATH (``scripts/dev.py test`` installs Debian's chromium where it
can); without them the test is skipped with the reason.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    found = os.environ.get("INSERTGEN_CHROMIUM")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = found or shutil.which(name)
    return found


def render(path, width: int = 1280):
    """(screenshot as an RGB array, console errors and page errors) of the HTML file ``path``."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    from PIL import Image

    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium found (set INSERTGEN_CHROMIUM or install chromium)")
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(path.resolve().as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            png = page.screenshot(full_page=True)
        finally:
            browser.close()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), errors, images


def assert_rendered(pixels, errors, images):
    assert not errors, errors
    assert images and all(done and width > 0 for done, width in images)  # every embedded picture decodes
    assert pixels.shape[0] > 900  # a long page, not an error stub
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not blank


def test_run_report_renders(cli, tiny_run_copy):
    assert cli("eval", "--run", tiny_run_copy, "--limit", 5, "--steps", 8)[0] == 0
    code, _, err = cli("report", tiny_run_copy, "--examples", 2)
    assert code == 0, err
    assert_rendered(*render(tiny_run_copy / "report.html"))


def test_grid_report_renders(cli, tiny_grid, tmp_path):
    grid = tmp_path / "grid"
    shutil.copytree(tiny_grid, grid)
    code, out, err = cli("report", grid)
    assert code == 0, err
    page = (grid / "report.html").read_text()
    assert "The papers' claims" not in page or "verdict" in page
    assert page.count("class='card'") == 2 and page.count('class="traj"') == 2 and "<h1>" in page
    assert "<script" not in page and "star-easy (exact_match)" in page
    assert_rendered(*render(grid / "report.html"))
