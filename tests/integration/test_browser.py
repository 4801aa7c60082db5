"""A real browser uses the web pages: headless Chromium, driven by Playwright.

A student submits URLs through the form, watches the job page fill its progress bar
without reloading, sees the chart of top words and which worker counted each page, and
cancels a second job with its button; the form keeps its repeat options folded and names
a bad URL by its line. Screenshots of the finished job page and of the form are saved in
test-artifacts/.

Chromium's set-up is shared with the other browser test (chromium.py).
"""

from __future__ import annotations

import re

import pytest
import requests
from chromium import CHROMIUM, CHROMIUM_ARGS, MISSING, screenshot_path
from processes import node_name, wait_for

pytestmark = pytest.mark.slow  # drives Chromium

sync_playwright = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (make install adds it)"
).sync_playwright
if CHROMIUM is None:
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.reported_errors = errors  # a test that expects one takes it out
    yield page
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def submit_form(page, manager_url: str, url: str, depth: int) -> str:
    """Fill in and send the form on /; return the job page's URL it leads to."""
    page.goto(manager_url + "/")
    page.fill("#urls", url)
    page.select_option("#depth", str(depth))
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/jobs/*")
    return page.url


def progress(page) -> tuple[int, int]:
    return page.eval_on_selector("#progress", "bar => [bar.value, bar.max]")


def test_a_crawl_fills_its_progress_bar_live(page, manager_url, fixture_site):
    # 16 linked pages of 0.5 s each, 3 at a time for this host: a few seconds of crawl.
    submit_form(page, manager_url, fixture_site.url("/links?n=16&ms=500"), depth=1)
    page.evaluate("window.notReloaded = true")
    seen = set()

    def finished() -> bool:
        value, maximum = progress(page)
        seen.add((value, maximum))
        return page.text_content("#job-status") == "done" and value == maximum == 17

    wait_for(finished, 60, "the job page did not reach 100%")

    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    assert any(0 < value < maximum for value, maximum in seen), f"no progress seen: {seen}"
    assert page.text_content("#progress-text") == "17 of 17 pages ended"
    assert page.text_content('#counts dd[data-status="done"]') == "17"
    # The chart of top words, drawn by the page itself.
    labels = page.eval_on_selector_all("#chart text.label", "els => els.map(e => e.textContent)")
    assert "fox" in labels and "the" not in labels  # stopwords left out
    assert page.locator("#chart rect.bar").count() == len(labels)
    # Each page with the worker that counted it.
    workers = page.eval_on_selector_all(
        "#pages tbody tr td:nth-child(9)", "cells => cells.map(c => c.textContent)"
    )
    assert workers and all(w.startswith(("w1@", "w2@")) for w in workers)
    assert page.locator("#cancel-form").count() == 0  # nothing left to cancel
    page.screenshot(path=str(screenshot_path("job-page")), full_page=True)


def test_the_cancel_button_stops_a_crawl(page, manager_url, fixture_site):
    submit_form(page, manager_url, fixture_site.url("/links?n=30&ms=800"), depth=1)
    wait_for(
        lambda: int(page.text_content('#counts dd[data-status="running"]')) > 0,
        30,
        "the crawl did not start",
    )

    page.click("#cancel-form button")

    wait_for(
        lambda: page.text_content("#job-status") == "cancelled", 30, "the job was not cancelled"
    )
    wait_for(
        lambda: int(page.text_content('#counts dd[data-status="skipped"]')) > 0,
        10,
        "no page shows as skipped",
    )
    assert page.locator("#cancel-form").count() == 0


def test_the_form_folds_its_repeat_options_and_names_a_bad_line(page, manager_url):
    page.goto(manager_url + "/")

    assert not page.is_visible("#every_minutes") and not page.is_visible("#cron")
    assert page.is_visible("#repeat summary")
    page.screenshot(path=str(screenshot_path("form-folded")), full_page=True)
    page.click("#repeat summary")  # opens without a script (the CSP allows none inline)
    assert page.is_visible("#every_minutes") and page.is_visible("#cron")
    page.click("#repeat summary")

    page.fill("#urls", "http://example.com/\nftp://example.com/file")
    page.click("#submit-form button[type=submit]")

    page.wait_for_selector("#form-error")
    # The form comes back with 400 (bad input), which Chromium reports on the console.
    page.reported_errors.remove(
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    )
    assert page.text_content("#form-error") == (
        "line 2 (ftp://example.com/file): only http and https URLs can be crawled"
    )
    page.screenshot(path=str(screenshot_path("form-error-line")), full_page=True)


def test_the_dashboard_shows_a_worker_joining_and_the_pages_it_counts(
    page, manager_url, fixture_site, workers
):
    page.goto(manager_url + "/dashboard")
    page.evaluate("window.notReloaded = true")

    def worker_rows() -> dict[str, dict[str, str]]:
        heads = page.eval_on_selector_all("#workers thead th", "ths => ths.map(h => h.textContent)")
        cells = page.eval_on_selector_all(
            "#workers tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        return {row[0]: dict(zip(heads, row, strict=True)) for row in cells}

    def online_workers() -> set[str]:
        return {name for name, row in worker_rows().items() if row["Online"] == "yes"}

    wait_for(lambda: {node_name("w1"), node_name("w2")} <= online_workers(), 15, "no workers")
    workers.start("w3")  # an instructor adds a worker during the demo
    try:
        wait_for(lambda: node_name("w3") in online_workers(), 20, "w3 never showed up")
        # The new worker's own figures: its machine, its CPU, and its pages in flight out
        # of the pages it can run at once.
        w3 = worker_rows()[node_name("w3")]
        assert w3["Machine"] and w3["CPU (of one CPU)"].endswith("%")
        assert w3["CPU (of the machine)"].endswith("%")
        assert re.fullmatch(r"\d+ / \d+", w3["Running now / slots"])
        machines = page.eval_on_selector_all(
            "#machines tbody tr", "rows => rows.map(r => r.cells[4].textContent)"
        )
        assert any(node_name("w3") in names for names in machines)

        requests.post(
            manager_url + "/api/jobs",
            json={"urls": [fixture_site.url(f"/delay?ms=100&dash={n}") for n in range(6)]},
            timeout=10,
        ).raise_for_status()
        wait_for(
            lambda: page.locator("#newest tbody tr").count() >= 6, 30, "no pages on the dashboard"
        )
        # The pages just ended count in the workers' recent pages per second.
        wait_for(
            lambda: sum(float(r["Pages/s (30 s)"]) for r in worker_rows().values()) > 0,
            10,
            "no worker's pages per second rose",
        )
        assert re.fullmatch(r"[\d.]+ s / [\d.]+ s", page.text_content("#wait"))
        # The line saying where the bound is follows one of the rules the page explains.
        kinds = page.eval_on_selector_all("#bound-rules li", "lis => lis.map(l => l.dataset.kind)")
        assert page.get_attribute("#bound", "data-kind") in kinds
        assert page.locator("#bound-rules li.current").count() == 1
        assert page.locator("#rate-chart polyline").count() == 1
        page.screenshot(path=str(screenshot_path("dashboard")), full_page=True)
        assert page.evaluate("window.notReloaded === true")
    finally:
        workers.stop("w3")
