"""Debian's chromium, headless, driven by playwright (no browser download): open a page from
file:// and collect its console errors, requests, images and text."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MISSING = "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)"


def launched_browser() -> Iterator:
    """The launched browser, closed after (the `browser` fixture of tests/conftest.py)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      timeout=120_000)
        yield launched
        launched.close()


def open_page(browser, page_html: Path, screenshot: Path) -> dict:
    """Open the page from file://; return its errors, requests, images and text."""
    seen = {"errors": [], "requests": []}
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
        page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
        page.on("request", lambda request: seen["requests"].append(request.url))
        page.goto(page_html.resolve().as_uri(), wait_until="load", timeout=120_000)
        seen["images"] = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        seen["text"] = page.inner_text("body")
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    return seen
