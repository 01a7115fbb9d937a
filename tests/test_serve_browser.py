"""The lake browser in a real browser: Playwright drives Debian's headless Chromium (no browser download)
against `mmp serve` on 127.0.0.1 over a small ingested lake. It searches for a text, opens an item and sees
its thumbnail and lineage (and that snapshot 1 held other bytes of the overwritten object), opens a snapshot
diff with thumbnails, filters the quarantine by reason, and uploads an image. Screenshots go to
`.test-artifacts/browser-*.png`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_lake import OVERWRITTEN, BrowserLake, Served
from tests.conftest import ARTIFACTS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[Any]:
    setup = subprocess.run([str(REPO / "scripts" / "ensure_chromium.sh")], capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, f"ensure_chromium.sh failed:\n{setup.stdout}\n{setup.stderr}"
    chromium = shutil.which("chromium")
    if chromium is None and os.geteuid() != 0:
        pytest.skip(f"no Chromium and not root to install it: {setup.stderr.strip()}")
    assert chromium is not None, "ensure_chromium.sh ran but no chromium on PATH"
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(f"{served.url}/search?token={served.token}")  # once: the server sets a cookie
            yield tab
        finally:
            browser.close()


def _shot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} is tiny: blank page?"
    return path


def _images_loaded(page: Any, selector: str) -> list[int]:
    """naturalWidth of each matching image once the browser is done with it (``complete`` is true after a load
    and after a failure): 0 means the browser could not load or decode it. Waiting first keeps a slow machine
    from reading an image that is still on its way as a broken one."""
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(e => e.complete)", arg=selector, timeout=30_000
    )
    return page.eval_on_selector_all(selector, "els => els.map(e => e.naturalWidth)")  # type: ignore[no-any-return]


def test_search_item_lineage_and_diff_in_chromium(page: Any, served: Served, browser_lake: BrowserLake) -> None:
    page.fill("input[name=q]", "a fruit")
    started = time.perf_counter()
    page.click("form[action='/search'] button[type=submit]")
    page.wait_for_selector(".card.hit")
    render_ms = (time.perf_counter() - started) * 1e3
    cards = page.locator(".card.hit")
    assert cards.count() >= 5
    assert cards.first.locator(".key").inner_text() == "images/orange.jpg"
    assert "snapshot 3" in page.inner_text("#summary") and "efficientnet-lite0" in page.inner_text("#summary")
    widths = _images_loaded(page, ".card.hit img")
    assert widths and all(w > 0 for w in widths), widths
    _shot(page, "search")
    print(f"search page: submit → grid rendered in {render_ms:.0f} ms")

    page.click(f".card.hit a[href^='/items/{browser_lake.ids['images/orange.jpg']}']")
    page.wait_for_selector("#lineage")
    assert page.inner_text("#item-key") == "images/orange.jpg"
    assert _images_loaded(page, "#thumbnail")[0] > 0
    lineage = page.inner_text("#lineage")
    assert "run-1" in lineage and "batch-1" in lineage and "efficientnet-lite0" in lineage
    assert "fruit" in page.inner_text("#annotations")  # the `pets` set labels it
    _shot(page, "item")

    page.goto(f"{served.url}/items/{browser_lake.ids[OVERWRITTEN]}")
    page.wait_for_selector("#history")
    assert "snapshot 1 held other bytes" in page.inner_text("#overwritten")
    _shot(page, "item-overwritten")

    page.click("header a[href='/snapshots']")
    page.wait_for_selector("#snapshots")
    page.click("#snapshots a[href='/diff?a=1&b=2']")
    page.wait_for_selector("#diff-summary")
    assert "1 changed" in " ".join(page.inner_text("#diff-summary").split())
    changed = page.locator(".card.changed")
    assert changed.count() == 1 and OVERWRITTEN in changed.first.inner_text()
    assert "other bytes" in changed.first.inner_text()
    widths = _images_loaded(page, ".card.changed img")  # before and after, both from the derived table
    assert len(widths) == 2 and all(w > 0 for w in widths), widths
    before, after = (page.get_attribute(f".card.changed img >> nth={i}", "src") for i in (0, 1))
    assert before.endswith("snapshot=1") and after.endswith("snapshot=2")
    _shot(page, "diff")


def test_quarantine_filter_and_image_upload(page: Any, served: Served, browser_lake: BrowserLake) -> None:
    page.goto(f"{served.url}/quarantine")
    page.select_option("select[name=reason]", "empty")
    page.click("form[action='/quarantine'] button")
    page.wait_for_selector("#quarantine")
    rows = page.locator("#quarantine tr")
    assert rows.count() == 2 and "empty.jpg" in rows.nth(1).inner_text()  # header + one row
    _shot(page, "quarantine")

    page.goto(f"{served.url}/search")
    page.set_input_files("input[name=image]", str(browser_lake.media / "images/orange.jpg"))
    page.click("form[action='/search/image'] button")
    page.wait_for_selector(".card.hit")
    assert page.locator(".card.hit .key").first.inner_text() == "images/orange.jpg"
    _shot(page, "upload")

    page.click("header a[href='/docs']")
    page.wait_for_selector("#endpoints")
    assert "/api/lineage" in page.inner_text("#endpoints")
    _shot(page, "api")
