"""Dead letters: failed pages are listed, retried, and keep their history (docs/reference.md,
"Dead letters").

Real workers crawl the fixture site's /flaky path, which answers 503 the first N times it is
asked for a key and then the OK page: a page that failed there is a dead letter that a
retry brings back. A retry counts the page once, adds to its attempts, keeps the history of
every failed attempt, and reopens its job, which ends again, once. Bad retries answer the
API's error body and change nothing. The /failures page and the job page retry with
CSRF-protected forms.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from conftest import as_owner, submit_job, wait_for_job
from fixture_site import OK_COUNTS
from processes import wait_for
from test_web import submit_from_the_form

pytestmark = pytest.mark.slow  # crawls failing pages and retries them


def flaky_url(site, fail: int, ms: int = 0) -> str:
    """A fixture URL that fails (503) `fail` times, then answers the OK page after `ms`."""
    return site.url(f"/flaky?key={uuid.uuid4().hex}&fail={fail}&ms={ms}")


def unique_url(site, path: str) -> str:
    """A fixture path under a URL no other job has (each job has its own pages)."""
    return site.url(f"{path}?dead-letters={uuid.uuid4().hex}")


@pytest.fixture(scope="module")
def tries(workers) -> int:
    """How many attempts one run of a failing page makes: the first and its retries."""
    return 1 + workers.settings.fetch_retries


def page_row(sql, job_id: str, url: str):
    return sql(
        "SELECT id, status, attempts, error, finished_at FROM pages "
        "WHERE job_id = :job AND url = :url",
        job=job_id,
        url=url,
    )[0]


def run_outcomes(tries: int, runs: int) -> list[str]:
    """The outcomes page_attempts records for `runs` failed runs of `tries` attempts each."""
    return (["retried"] * (tries - 1) + ["failed"]) * runs


def moment(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


# --- Listed, retried, counted once ------------------------------------------------------


def test_a_failed_page_is_listed_then_a_retry_counts_it_once(
    client, workers, fixture_site, sql, tries
):
    flaky = flaky_url(fixture_site, fail=tries, ms=300)  # slow once it answers: see "running"
    job_id = submit_job(client, [unique_url(fixture_site, "/ok"), flaky])
    first = wait_for_job(client, job_id)
    assert (first["status"], first["pages"]["done"], first["pages"]["failed"]) == ("done", 1, 1)

    listed = client.get(f"/api/failures?job={job_id}").get_json()

    assert [(p["job_id"], p["url"], p["error"], p["http_status"]) for p in listed] == [
        (job_id, flaky, "http_error", 503)
    ]
    assert "503" in listed[0]["message"] and listed[0]["attempts"] == tries
    history = listed[0]["history"]
    assert [a["attempt"] for a in history] == list(range(1, tries + 1))
    assert [a["outcome"] for a in history] == run_outcomes(tries, 1)
    assert all(a["error"] == "http_error" and a["http_status"] == 503 for a in history)
    # Across jobs too, newest first.
    everything = client.get("/api/failures?limit=1000").get_json()
    assert (job_id, flaky) in [(p["job_id"], p["url"]) for p in everything]
    failed_at = [moment(p["failed_at"]) for p in everything]
    assert failed_at == sorted(failed_at, reverse=True)

    response = client.post(f"/api/jobs/{job_id}/retry", json={}, headers=as_owner(job_id))

    assert response.status_code == 202
    reopened = response.get_json()
    assert reopened.keys() == first.keys()  # the job, as GET /api/jobs/<id> shows it
    assert (reopened["id"], reopened["status"], reopened["finished_at"]) == (
        job_id,
        "running",
        None,
    )
    pages = reopened["pages"]
    assert (pages["failed"], pages["done"], pages["queued"] + pages["running"]) == (0, 1, 1)
    job = wait_for_job(client, job_id)
    assert job["status"] == "done"
    assert (job["pages"]["done"], job["pages"]["failed"], job["pages"]["total"]) == (2, 0, 2)
    page = page_row(sql, job_id, flaky)
    assert (page.status, page.attempts, page.error) == ("done", tries + 1, None)
    # One set of word counts for the page, and the job's words count its two pages once each.
    assert dict(sql("SELECT word, count FROM word_counts WHERE page_id = :id", id=page.id)) == (
        OK_COUNTS
    )
    words = client.get(f"/api/jobs/{job_id}/words?stopwords=include&limit=100").get_json()
    assert {w["word"]: w["count"] for w in words} == {w: 2 * n for w, n in OK_COUNTS.items()}
    # The job ended again, after its last page, and the failed attempts are still there.
    assert moment(job["finished_at"]) >= page.finished_at > moment(first["finished_at"])
    assert client.get(f"/api/failures?job={job_id}").get_json() == []
    attempts = client.get(f"/api/jobs/{job_id}/attempts").get_json()
    assert [(a["url"], a["attempt"], a["error"]) for a in attempts] == [
        (flaky, n, "http_error") for n in range(1, tries + 1)
    ]


def test_every_retry_adds_its_attempts_and_the_history_keeps_each_error(
    client, workers, fixture_site, sql, tries
):
    flaky = flaky_url(fixture_site, fail=3 * tries)  # fails three runs, counted on the fourth
    job_id = submit_job(client, [flaky])
    assert wait_for_job(client, job_id)["status"] == "failed"

    for run in (2, 3, 4):
        response = client.post(
            f"/api/jobs/{job_id}/retry", json={"urls": [flaky]}, headers=as_owner(job_id)
        )
        assert response.status_code == 202, response.get_json()
        job = wait_for_job(client, job_id)
        page = page_row(sql, job_id, flaky)
        if run < 4:
            assert (job["status"], page.status, page.attempts) == ("failed", "failed", run * tries)

    # The fourth run started with more attempts than the crash guard allows a page that
    # never ends (tasks.crawl_pages), but the guard counts only the starts since the last
    # recorded outcome: the page was fetched, not given up on.
    assert (job["status"], page.status, page.attempts) == ("done", "done", 3 * tries + 1)
    history = sql(
        "SELECT attempt, outcome, error, http_status FROM page_attempts "
        "WHERE page_id = :id ORDER BY attempt",
        id=page.id,
    )
    assert [row.attempt for row in history] == list(range(1, 3 * tries + 1))
    assert [row.outcome for row in history] == run_outcomes(tries, 3)
    assert {(row.error, row.http_status) for row in history} == {("http_error", 503)}


# --- Bad retries change nothing -----------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_job(app, workers, fixture_site) -> dict:
    """A done job with one counted page and one failed page (404: not worth a retry)."""
    client = app.test_client()
    ok, missing = unique_url(fixture_site, "/ok"), unique_url(fixture_site, "/missing")
    job = wait_for_job(client, submit_job(client, [ok, missing]))
    assert (job["status"], job["pages"]["failed"]) == ("done", 1)
    return {"id": job["id"], "ok": ok, "failed": missing}


@pytest.fixture(scope="module")
def cancelled_job(app, workers, fixture_site) -> dict:
    """A job cancelled after one of its pages had failed."""
    client = app.test_client()
    missing = unique_url(fixture_site, "/missing")
    slow = fixture_site.url(f"/delay?ms=800&dead-letters={uuid.uuid4().hex}")
    job_id = submit_job(client, [missing, slow])
    wait_for(
        lambda: client.get(f"/api/jobs/{job_id}").get_json()["pages"]["failed"] == 1,
        30,
        "the missing page did not fail",
    )
    assert client.delete(f"/api/jobs/{job_id}", headers=as_owner(job_id)).status_code == 200
    # The page running at the cancel is stored when it ends.
    job = wait_for(
        lambda: (j := client.get(f"/api/jobs/{job_id}").get_json())["pages"]["running"] == 0 and j,
        30,
        "the started page did not end",
    )
    assert job["status"] == "cancelled"
    return {"id": job_id, "failed": missing}


def job_state(sql, job_id: str) -> tuple:
    """Everything a retry could change: the job, its pages and their history."""
    return (
        sql("SELECT status, finished_at FROM jobs WHERE id = :job", job=job_id),
        sql(
            "SELECT url, status, attempts, error, task_id, queued_at FROM pages "
            "WHERE job_id = :job ORDER BY id",
            job=job_id,
        ),
        sql(
            "SELECT a.* FROM page_attempts a JOIN pages p ON p.id = a.page_id "
            "WHERE p.job_id = :job ORDER BY a.page_id, a.attempt",
            job=job_id,
        ),
    )


def assert_error(response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == (code, field) and error["message"]


NOT_A_PAGE = "http://127.0.0.1:9/never-a-page"
# Each: the body (given the job's counted and failed URLs), status, code, field.
BAD_RETRIES = {
    "unknown-url": (lambda ok, failed: {"urls": [failed, NOT_A_PAGE]}, 404, "not_found", "urls[1]"),
    "not-failed": (lambda ok, failed: {"urls": [failed, ok]}, 400, "not_failed", "urls[1]"),
    "urls-not-a-list": (lambda ok, failed: {"urls": failed}, 400, "invalid_value", "urls"),
    "empty-urls": (lambda ok, failed: {"urls": []}, 400, "invalid_value", "urls"),
    "ftp-url": (lambda ok, failed: {"urls": [failed, "ftp://x/y"]}, 400, "invalid_url", "urls[1]"),
    "unknown-field": (lambda ok, failed: {"url": failed}, 400, "unknown_field", "url"),
    "not-an-object": (lambda ok, failed: [failed], 400, "invalid_body", None),
}


@pytest.mark.parametrize(
    ("body", "status", "code", "field"), BAD_RETRIES.values(), ids=list(BAD_RETRIES)
)
def test_a_bad_retry_is_refused_and_changes_nothing(
    client, sql, mixed_job, body, status, code, field
):
    before = job_state(sql, mixed_job["id"])

    response = client.post(
        f"/api/jobs/{mixed_job['id']}/retry",
        json=body(mixed_job["ok"], mixed_job["failed"]),
        headers=as_owner(mixed_job["id"]),
    )

    assert_error(response, status, code, field)
    assert job_state(sql, mixed_job["id"]) == before


def test_a_retry_that_is_not_json_or_not_a_job_is_refused(client, sql, mixed_job):
    before = job_state(sql, mixed_job["id"])
    retry = f"/api/jobs/{mixed_job['id']}/retry"
    owner = as_owner(mixed_job["id"])

    assert_error(
        client.post(retry, data="{", content_type="application/json", headers=owner),
        400,
        "invalid_json",
    )
    assert_error(
        client.post(retry, data={"urls": mixed_job["failed"]}, headers=owner),
        415,
        "unsupported_media_type",
    )
    assert_error(client.post(f"/api/jobs/{uuid.uuid4()}/retry", json={}), 404, "not_found")
    assert_error(client.post("/api/jobs/not-a-uuid/retry", json={}), 404, "not_found")
    assert_error(client.get(f"/api/failures?job={uuid.uuid4()}"), 404, "not_found")
    assert_error(client.get("/api/failures?limit=0"), 400, "invalid_value", "limit")
    assert_error(client.get(f"/api/jobs/{uuid.uuid4()}/attempts"), 404, "not_found")
    assert job_state(sql, mixed_job["id"]) == before


def test_a_cancelled_job_is_not_retried(client, sql, cancelled_job):
    before = job_state(sql, cancelled_job["id"])

    for body in ({}, {"urls": [cancelled_job["failed"]]}):
        response = client.post(
            f"/api/jobs/{cancelled_job['id']}/retry",
            json=body,
            headers=as_owner(cancelled_job["id"]),
        )
        assert_error(response, 400, "job_cancelled")

    assert job_state(sql, cancelled_job["id"]) == before


def test_a_job_with_no_failed_page_has_nothing_to_retry(crawl, client, sql, fixture_site):
    job = crawl([unique_url(fixture_site, "/ok")])
    before = job_state(sql, job["id"])

    retry = client.post(f"/api/jobs/{job['id']}/retry", json={}, headers=as_owner(job["id"]))
    assert_error(retry, 400, "nothing_to_retry")

    assert job_state(sql, job["id"]) == before


# --- The web pages ------------------------------------------------------------------------


def html(response) -> BeautifulSoup:
    assert response.status_code == 200 and response.mimetype == "text/html"
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def form_data(form) -> dict[str, str]:
    """What a browser sends for a form of hidden fields and a button (its token included)."""
    return {field["name"]: field["value"] for field in form.select("input[type=hidden]")}


def failed_row(soup: BeautifulSoup, url: str):
    """The row of /failures's table that shows `url`, or None."""
    for row in soup.select("table#failed-pages tbody tr"):
        if row.select_one("td.url").get_text(strip=True) == url:
            return row
    return None


def flashed(soup: BeautifulSoup) -> list[str]:
    return [p.get_text(strip=True) for p in soup.select("main p.flash")]


def test_the_failures_page_lists_a_failed_page_and_retries_it(
    browser, client, workers, fixture_site, sql, tries
):
    flaky = flaky_url(fixture_site, fail=tries)
    job_id = submit_from_the_form(browser, [flaky])  # this browser may retry it
    assert wait_for_job(client, job_id)["status"] == "failed"

    soup = html(browser.get("/failures"))

    assert soup.select_one("header nav a[href='/failures']") is not None
    row = failed_row(soup, flaky)
    cells = [cell.get_text(" ", strip=True) for cell in row.select("td")]
    assert cells[1] == job_id[:8] and cells[3].startswith("http_error")
    assert "503" in cells[3] and cells[4].split()[0] == str(tries)
    assert soup.select_one(f"form#retry-job-{job_id}") is not None  # the job's button too
    form = row.select_one("form.retry-page")
    # Without the page's token, nothing is queued.
    refused = browser.post(form["action"], data={"url": flaky, "back": "failures"})
    assert refused.status_code == 400 and page_row(sql, job_id, flaky).status == "failed"

    response = browser.post(form["action"], data=form_data(form))

    assert response.status_code == 303 and urlsplit(response.headers["Location"]).path == (
        "/failures"
    )
    assert flashed(html(browser.get("/failures"))) == ["1 failed page queued again"]
    assert wait_for_job(client, job_id)["status"] == "done"
    assert page_row(sql, job_id, flaky).attempts == tries + 1
    assert failed_row(html(browser.get("/failures")), flaky) is None


def test_a_job_page_with_failed_pages_retries_them(
    browser, client, workers, fixture_site, sql, tries
):
    flaky = [flaky_url(fixture_site, fail=tries) for _ in range(2)]
    job_id = submit_from_the_form(browser, [unique_url(fixture_site, "/ok"), *flaky])
    assert wait_for_job(client, job_id)["pages"]["failed"] == 2

    soup = html(browser.get(f"/jobs/{job_id}"))

    assert soup.select_one("#counts dd[data-status=failed]").get_text(strip=True) == "2"
    form = soup.select_one("form#retry-form")
    assert "Retry 2 failed pages" in form.get_text(" ", strip=True)

    response = browser.post(form["action"], data=form_data(form))

    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == f"/jobs/{job_id}"
    assert flashed(html(browser.get(f"/jobs/{job_id}"))) == ["2 failed pages queued again"]
    job = wait_for_job(client, job_id)
    assert (job["status"], job["pages"]["done"], job["pages"]["failed"]) == ("done", 3, 0)
    assert html(browser.get(f"/jobs/{job_id}")).select_one("form#retry-form") is None
