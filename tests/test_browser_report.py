"""``selfbake report`` pages opened in a real headless Chromium: no console errors, every plot visible.

Driven by Playwright's Python package against the system's Chromium (Debian's
``chromium`` package; Playwright's own browser download is never used): it
gives console messages and page errors as events, evaluates ``naturalWidth``
and layout boxes in the page, and writes a full-page screenshot, which
Chromium's ``--screenshot``/``--dump-dom`` flags cannot do together.
Skipped when no browser is on PATH or playwright is not installed.
"""

from __future__ import annotations

import shutil

import pytest

from selfbake.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium, chromium-browser or google-chrome on PATH")


@pytest.fixture(scope="module")
def report_pages(tmp_path_factory):
    from tinyruns import tiny_bake, tiny_eval

    root = tmp_path_factory.mktemp("runs")
    runs = {"bake": tiny_bake(root / "bake", "--measure-n", "2"), "eval": tiny_eval(root / "eval")}
    for run in runs.values():
        assert main(["report", str(run)]) == 0
    return {name: run / "report.html" for name, run in runs.items()}


@pytest.mark.parametrize("command", ["bake", "eval"])
def test_report_page_loads_without_console_errors_and_shows_every_plot(report_pages, command, tmp_path):
    executable = _browser()
    sync_api = pytest.importorskip("playwright.sync_api")
    page_file = report_pages[command]
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile every run
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_file.as_uri(), wait_until="load")
            images = page.evaluate(
                """() => [...document.images].map(img => {
                    const box = img.getBoundingClientRect();
                    return {alt: img.alt, complete: img.complete, natural: img.naturalWidth,
                            width: box.width, height: box.height,
                            hidden: getComputedStyle(img).visibility === 'hidden'};
                })"""
            )
            title = page.title()
            heading = page.inner_text("h1")
            page.screenshot(path=str(tmp_path / f"{command}-report.png"), full_page=True)
        finally:
            context.close()
    assert errors == []
    assert f"selfbake {command} report" in title and heading == page_file.parent.name
    assert images, "the report has no plots"
    for image in images:
        assert image["complete"] and image["natural"] > 0, image  # the PNG decoded
        assert image["width"] > 0 and image["height"] > 0 and not image["hidden"], image  # laid out, shown
    shot = tmp_path / f"{command}-report.png"
    assert shot.stat().st_size > 10_000
