"""Hostile pages end with the right error within their time limit, and the workers go on.

The fixture site serves answers built to exhaust a worker: gzip bombs, endless bodies,
bytes that drip in for ever (in the headers, the body, a chunk-size line, a gzip header),
deeply nested tags, huge attributes, broken encodings, binary data labelled as HTML. The
test workers run with a 100,000-byte limit, a 1 s read timeout and a 5 s page deadline.
Pages that are quick to judge are crawled in one job; the dripping ones, which each hold
a slot of the host until the deadline, in small jobs one after another so that they never
wait for a slot (which would time them out for another reason). Then a normal page must
still be counted by the same worker processes.
"""

from __future__ import annotations

import pytest
from conftest import submit_job, wait_for_job
from fixture_site import MAX_BYTES
from processes import node_name

pytestmark = pytest.mark.slow  # waits out pages that drip, stall or flood

PAGE_TIMEOUT_MS = 5_000  # WORDCRAWL_PAGE_TIMEOUT of the test workers
QUICK_MS = 3_000  # a limit reached long before the deadline (loopback, small bodies)
LATE_MS = 1_500  # how much past the deadline a cut page may take to be stored

# path: (status, error, http_status); all judged quickly.
QUICK = {
    "/gzip-bomb": ("failed", "too_large", None),  # small Content-Length, inflates to 20 MB
    "/gzip-bomb-chunked": ("failed", "too_large", None),  # the same without Content-Length
    "/gzip-bomb-double": ("failed", "too_large", None),  # Content-Encoding: gzip, gzip
    "/endless-chunked": ("failed", "too_large", None),
    "/endless-stream": ("failed", "too_large", None),  # no length, no chunks: ends at close
    "/binary-noise": ("failed", "decode_error", None),  # random bytes labelled text/html
    "/bad-retry-after": ("failed", "http_error", 503),  # Retry-After: ² (a digit to isdigit)
    "/bad-content-length": ("done", None, 200),  # Content-Length: ², read to the close
    "/deep-nesting": ("done", None, 200),
    "/deep-unclosed": ("done", None, 200),
    "/huge-attribute": ("done", None, 200),
    "/malformed": ("done", None, 200),
    "/invalid-utf8": ("done", None, 200),
    "/mixed-encoding": ("done", None, 200),
    "/unknown-charset": ("done", None, 200),
    "/invalid-shift-jis": ("done", None, 200),
    "/charset-base64": ("done", None, 200),  # a Python codec, but not a text encoding
    "/charset-idna": ("done", None, 200),  # a codec that cannot replace bad bytes
    "/charset-utf7": ("done", None, 200),  # decodes "+2AA-" to a lone surrogate
}
# Only the page deadline stops these: every byte comes within the read timeout.
DRIPPING = [
    "/drip-headers",
    "/drip-body",
    "/drip-chunked",
    "/drip-gzip-name",  # bytes keep coming, but inflate to nothing
    "/endless-continue",  # "100 Continue" for ever, never the real status line
]
# Each limit, exactly at it and one past it.
LIMITS = {
    f"/sized?bytes={MAX_BYTES}": ("done", None),
    f"/sized?bytes={MAX_BYTES + 1}": ("failed", "too_large"),
    f"/sized?bytes={MAX_BYTES}&send=chunked": ("done", None),
    f"/sized?bytes={MAX_BYTES + 1}&send=chunked": ("failed", "too_large"),
    f"/sized?bytes={MAX_BYTES}&send=gzip": ("done", None),  # the limit is on inflated bytes
    f"/sized?bytes={MAX_BYTES + 1}&send=gzip": ("failed", "too_large"),
    "/hops?n=5": ("done", None),  # WORDCRAWL_MAX_REDIRECTS defaults to 5
    "/hops?n=6": ("failed", "too_many_redirects"),
}
# Words each counted hostile page must have, by the documented decoding rule: the HTTP
# charset, else <meta charset>, else UTF-8 with replacement characters (which are not
# letters, so they split words: latin-1 "caf\xe9" is counted as "caf").
WORDS = {
    "/bad-content-length": {"quick", "fox", "dog"},
    "/deep-nesting": {"deep", "words"},
    "/deep-unclosed": {"unclosed", "words"},
    "/huge-attribute": {"attribute", "words"},  # and nothing of the 90 KB title attribute
    "/malformed": {"broken", "markup", "still", "counted"},
    "/invalid-utf8": {"valid", "words", "and", "more"},
    "/mixed-encoding": {"naïve", "caf", "cr", "me"},
    "/unknown-charset": {"fallback", "naïve"},
    "/invalid-shift-jis": {"sjis", "あ", "words"},
    "/charset-base64": {"not", "base64", "words"},
    "/charset-idna": {"not", "idna", "words"},
    "/charset-utf7": {"seven", "words"},
}
# Words that must not be there: what a wrong decoding or parsing would have produced.
NOT_WORDS = {
    "/huge-attribute": {"x" * 90_000},
    "/mixed-encoding": {"café", "crème"},
}


def crawl_pages(client, urls: list[str], timeout: float) -> dict[str, dict]:
    """Crawl URLs in one job; return its pages by URL, each with the job's id."""
    job = wait_for_job(client, submit_job(client, urls), timeout)
    pages = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    return {page["url"]: {**page, "job_id": job["id"]} for page in pages}


@pytest.fixture(scope="module")
def quick_pages(app, workers, fixture_site) -> dict[str, dict]:
    """The pages of one job crawling every quick hostile path and every limit."""
    urls = [fixture_site.url(path) for path in [*QUICK, *LIMITS]]
    return crawl_pages(app.test_client(), urls, timeout=60)


@pytest.fixture(scope="module")
def dripping_pages(app, workers, fixture_site) -> dict[str, dict]:
    """The dripping pages, two jobs of at most two pages at a time (a host has 3 slots)."""
    client, pages = app.test_client(), {}
    for start in range(0, len(DRIPPING), 2):
        urls = [fixture_site.url(path) for path in DRIPPING[start : start + 2]]
        pages |= crawl_pages(client, urls, timeout=30)
    return pages


@pytest.mark.parametrize(("path", "expected"), QUICK.items(), ids=list(QUICK))
def test_hostile_page_ends_quickly_with_its_outcome(quick_pages, fixture_site, path, expected):
    page = quick_pages[fixture_site.url(path)]

    assert (page["status"], page["error"], page["http_status"]) == expected, page["message"]
    assert page["elapsed_ms"] < QUICK_MS
    assert page["worker"]  # a worker ended it, not a reconciler giving up on it
    if page["status"] == "failed":
        assert page["message"]
        assert page["word_count"] is None


@pytest.mark.parametrize("path", DRIPPING)
def test_dripping_page_times_out_at_the_page_deadline(dripping_pages, fixture_site, path):
    page = dripping_pages[fixture_site.url(path)]

    assert (page["status"], page["error"]) == ("failed", "timeout"), page["message"]
    assert "busy" not in page["message"]  # the page deadline, not a wait for a busy host
    assert PAGE_TIMEOUT_MS <= page["elapsed_ms"] <= PAGE_TIMEOUT_MS + LATE_MS
    assert page["worker"]


@pytest.mark.parametrize(("path", "expected"), LIMITS.items(), ids=list(LIMITS))
def test_a_limit_holds_exactly(quick_pages, fixture_site, path, expected):
    page = quick_pages[fixture_site.url(path)]

    assert (page["status"], page["error"]) == expected, page["message"]
    assert page["elapsed_ms"] < QUICK_MS


@pytest.mark.parametrize("path", WORDS, ids=list(WORDS))
def test_counted_hostile_page_has_the_words_the_rules_give(quick_pages, fixture_site, sql, path):
    page = quick_pages[fixture_site.url(path)]
    rows = sql(
        "SELECT w.word, w.count FROM word_counts w JOIN pages p ON p.id = w.page_id "
        "WHERE p.job_id = :job AND p.url = :url",
        job=page["job_id"],
        url=page["url"],
    )
    words = {row.word for row in rows}

    assert page["status"] == "done"
    assert WORDS[path] <= words
    assert not words & NOT_WORDS.get(path, set())
    assert not any("\ufffd" in word for word in words)  # a replacement character is no letter
    assert page["word_count"] == sum(row.count for row in rows)
    assert page["unique_words"] == len(rows)


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/deep-nesting", "Deep"),
        ("/huge-attribute", "Attribute"),
        ("/mixed-encoding", None),
        ("/charset-utf7", "Seven \ufffd"),
    ],
)
def test_counted_hostile_page_keeps_its_title(quick_pages, fixture_site, path, title):
    assert quick_pages[fixture_site.url(path)]["title"] == title


def test_the_workers_go_on_counting_after_the_hostile_pages(
    quick_pages, dripping_pages, crawl, workers, fixture_site
):
    pids = {name: process.pid for name, process in workers.processes.items()}

    job = crawl([fixture_site.url("/ok"), fixture_site.url("/plain")])

    assert job["status"] == "done"
    assert job["pages"]["done"] == 2
    # The same worker processes, alive, did it: none was replaced or restarted.
    assert {name: process.pid for name, process in workers.processes.items()} == pids
    assert all(process.poll() is None for process in workers.processes.values())
    assert {node_name(name) for name in pids} <= workers.online()
    hostile_workers = {page["worker"] for page in [*quick_pages.values(), *dripping_pages.values()]}
    assert hostile_workers <= {node_name(name) for name in pids}
