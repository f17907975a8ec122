"""Open a report page (summaries/<job_id>.html) in a real headless Chromium and say what happened.

Drives Debian's Chromium (/usr/bin/chromium, or SPOTMAP_CHROMIUM; tools/ensure-chromium installs it)
through playwright's Python package; playwright never downloads a browser of its own here. The page is
loaded from disk (file://) in a fresh profile, with every background service of Chromium off, and every
request the page makes, every console error and every uncaught exception is recorded, so a test can
assert that the page is self-contained. Used by tests/e2e/test_report_page.py and
tools/report_screenshot.py.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("SPOTMAP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces we may not have
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOAD_TIMEOUT_MS = 30_000

# What the page shows, read from its DOM: the timeline's bars and rows, the counts and the failures.
_READ_DOM = """() => ({
  title: document.title,
  status: document.body.dataset.status,
  bars: Array.from(document.querySelectorAll('.chart [data-outcome]')).map(b => ({
    item: b.dataset.item === undefined ? null : Number(b.dataset.item),
    attempt: b.dataset.attempt === undefined ? null : Number(b.dataset.attempt),
    outcome: b.dataset.outcome,
    capacity: b.dataset.capacity || null,
    width: b.getBoundingClientRect().width,
    visible: b.getBoundingClientRect().width > 0 && getComputedStyle(b).display !== 'none',
  })),
  rows: Array.from(document.querySelectorAll('.chart [data-row-status]')).map(r => ({
    items: r.dataset.items, status: r.dataset.rowStatus })),
  counts: Object.fromEntries(Array.from(document.querySelectorAll('[data-count]')).map(
    t => [t.dataset.count, t.querySelector('b').textContent])),
  failures: Array.from(document.querySelectorAll('#failures tr[data-item]')).map(r => ({
    item: Number(r.dataset.item), text: r.textContent })),
  legend: Array.from(document.querySelectorAll('.legend [data-kind-count]')).map(
    c => [c.dataset.kindCount, Number(c.textContent)]),
})"""


@dataclass
class PageLoad:
    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, its own included
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dom: dict[str, Any] = field(default_factory=dict)
    hidden_after_legend_click: int = 0  # interrupted bars hidden by unticking their legend entry
    screenshot: Path | None = None


def chromium_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (tools/ensure-chromium installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright's Python package is missing (make install)"
    return None


def load_report(page: Path, screenshot: Path | None = None, width: int = 1280) -> PageLoad:
    """Load `page` in headless Chromium, read its DOM, try its legend, and optionally screenshot it."""
    from playwright.sync_api import sync_playwright

    url = page.resolve().as_uri()
    result = PageLoad(url)
    with tempfile.TemporaryDirectory(prefix="spotmap-chromium-") as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile,  # a new --user-data-dir: no cache, no cookies, nothing from an earlier run
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": 900},
            offline=True,
        )
        try:
            context.on("request", lambda request: result.requests.append(request.url))
            tab = context.pages[0] if context.pages else context.new_page()
            tab.on("console", lambda message: _console(result, message))
            tab.on("pageerror", lambda error: result.page_errors.append(str(error)))
            tab.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
            result.dom = tab.evaluate(_READ_DOM)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=str(screenshot), full_page=True)
                result.screenshot = screenshot
            box = tab.locator('.legend input[data-kind="interrupted"]')
            if box.count():
                box.uncheck()
                result.hidden_after_legend_click = tab.locator(".chart .k-interrupted.hidden-kind").count()
        finally:
            context.close()
    return result


def _console(result: PageLoad, message: Any) -> None:
    if message.type == "error":
        result.console_errors.append(message.text)
