"""The parts of the crawl task that need no broker: how long it waits for its pages, and
what Flower shows of its messages (job_tasks/sending.py)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from job_tasks import sending, tasks
from job_tasks.page_errors import Timeout
from job_tasks.settings import Settings
from job_tasks.storing.pages import ClaimedPage, CountedPage
from job_tasks.storing.release import NewPage


def page(url: str) -> ClaimedPage:
    return ClaimedPage(id=1, job_id=uuid.uuid4(), url=url, depth=0, attempts=1)


@pytest.fixture
def sites(monkeypatch):
    """Pages counted at once, except /stuck, which hangs until the test lets it go: as a
    fetch that overran its deadline would (the threads pool has no time limit of its own)."""
    released = threading.Event()

    def count(claimed: ClaimedPage) -> CountedPage:
        if claimed.url.endswith("/stuck"):
            released.wait(10)
        return CountedPage(200, claimed.url, {"word": 1}, 0)

    monkeypatch.setattr(tasks, "_count_in_thread", count)
    monkeypatch.setattr(tasks, "COUNT_MARGIN_SECONDS", 0.2)
    yield
    released.set()


def test_pages_not_counted_in_time_end_timeout_and_the_others_are_kept(sites):
    pages = [page("http://a/1"), page("http://a/stuck"), page("http://a/2")]
    started = time.monotonic()

    outcomes = tasks._count_side_by_side(pages, Settings(page_timeout=0.1, max_pages_per_task=3))

    assert time.monotonic() - started < 2  # the page deadline (0.1 s) and the margin (0.2 s)
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "CountedPage",
        "_Failure",
        "CountedPage",
    ]
    late = outcomes[1]
    assert isinstance(late.error, Timeout) and late.final  # timed out, and not retried
    assert "0.3 s" in late.error.message


def test_a_thread_still_busy_does_not_hold_up_the_next_task(sites):
    settings = Settings(page_timeout=0.1, max_pages_per_task=1)
    tasks._count_side_by_side([page("http://a/stuck")], settings)

    started = time.monotonic()
    (outcome,) = tasks._count_side_by_side([page("http://a/1")], settings)

    assert isinstance(outcome, CountedPage)
    assert time.monotonic() - started < 0.3  # new fetch threads, not the busy one


def test_flower_shows_a_messages_page_ids_and_urls_within_bounds():
    one = sending.args_shown([NewPage(42, "t", "http://site/a")])
    many = sending.args_shown([NewPage(n, "t", f"http://site/{'x' * 50}/{n}") for n in range(20)])

    assert one == "[[42]] http://site/a"
    assert len(many) == sending.SHOWN_ARGS_CHARS and many.endswith("…")
    assert many.startswith("[[0, 1, 2, 3,")
