"""The dashboard in headless Chromium (Debian's, driven by Playwright; never a downloaded browser).

Every page loads against the filled store, its charts have drawn data, every link on it leads somewhere that
answers, and no page logs a console error. The overview's screenshot goes to the test artifacts
(KALLOS_TEST_ARTIFACTS, default test-artifacts/ in the repository)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IN_CI = os.environ.get("CI", "").lower() == "true"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]  # fmt: skip
PAGES = {
    "/": ["#runs-table", "#freshness-table", "#due-table", "#lag-buckets", "#coverage-table"],
    "/runs": ["#durations-chart", "#failures-table"],
    "/quality": ["#quality-chart", "#reasons-table", "#events-table"],
    "/market": ["#market-table"],
    "/market/bitcoin?ind=sma_20,rsi_14": ["#price-chart", "#volume-chart", "#indicator-chart"],
    "/index": ["#index-chart", "#drawdown-chart", "#constituents-table"],
    "/signals": ["#signals-chart", "#evaluation-table", "#latest-signals"],
}
ARTIFACTS = Path(os.environ.get("KALLOS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message + " -- required when CI=true")
        pytest.skip(message)
    return path


@pytest.fixture
def browser_page():
    try:
        import playwright.sync_api as playwright
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"Playwright is required when CI=true ({exc}); it is in the test extra")
        pytest.skip(f"Playwright is not installed ({exc}): pip install -e '.[test]'")
    executable = chromium_path()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            page.on("requestfailed", lambda r: _request_failed(r, errors))
            yield page, errors
        finally:
            browser.close()


def _request_failed(request, errors: list[str]) -> None:  # noqa: ANN001 - a Playwright Request
    """A request the browser cancelled because the test moved to the next page (the favicon still loading) is
    not a failure of the page; any other (refused, reset, timed out) is."""
    if request.failure != "net::ERR_ABORTED":
        errors.append(f"request failed: {request.url} ({request.failure})")


def test_every_page_loads_draws_its_charts_and_links_work(live_server, browser_page):
    page, errors = browser_page
    links: set[str] = set()
    for path, selectors in PAGES.items():
        response = page.goto(live_server + path)
        assert response is not None and response.status == 200, path
        for sel in selectors:
            assert page.locator(sel).count() == 1, (path, sel)
            if sel.endswith("-chart"):
                chart = page.locator(sel)
                assert int(chart.get_attribute("data-points") or 0) > 0, (path, sel)
                box = chart.locator("svg").bounding_box()
                assert box is not None and box["width"] > 400 and box["height"] > 80, (path, sel)
                assert chart.locator("polyline, rect, circle").count() > 0, (path, sel)
            elif sel.endswith("-table"):
                assert page.locator(f"{sel} tbody tr").count() > 0, (path, sel)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            url = urljoin(live_server + path, href)
            if urlsplit(url).netloc == urlsplit(live_server).netloc:
                links.add(url)
        if path == "/":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard-overview.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
    assert len(links) > 20
    for url in sorted(links):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
    assert errors == []


def test_the_page_refreshes_itself(live_server, browser_page):
    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(live_server + "/")
    page.locator("main h1").evaluate("h => { h.textContent = 'stale'; }")
    expect(page.locator("main h1")).to_have_text("stale")
    # The timer (data-refresh seconds, 30 here) runs this same refresh; the event lets the test skip the wait.
    page.evaluate("() => window.dispatchEvent(new Event('kallos-refresh'))")
    expect(page.locator("main h1")).to_have_text("Pipeline health", timeout=10_000)
    page.click("#refresh-toggle")
    expect(page.locator("#refresh-toggle")).to_have_text("auto-refresh paused")
    assert errors == []
