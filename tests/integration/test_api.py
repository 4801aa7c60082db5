"""The JSON API (docs/reference.md, "The HTTP API") as a program using it sees it.

Bad input of every kind gets its status (400, 404, 405, 413, 415, 429) and the body
{"error": {"code", "message", "field"}}, and creates no row; good calls answer in the
documented shapes; DELETE cancels a running job without fetching the pages it skips.
"""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import replace
from datetime import datetime

import psutil
import pytest
import redis
from conftest import as_owner, row_counts, submit_job, wait_for_job
from fixture_site import OK_COUNTS
from processes import node_name, wait_for

from job_manager import create_app
from job_manager.bounds import RULES

# A seed that must never be fetched: loopback, and not among the hosts the workers allow.
SEED = "http://127.0.0.1:9/never-fetched"


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """Check an answer is the API's error body, with this status, code and field."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert (error["code"], error["field"]) == (code, field)
    assert isinstance(error["message"], str) and error["message"]
    return error


def moment(value: str) -> datetime:
    """Parse an ISO 8601 time from the API; it must carry its timezone."""
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value} has no timezone"
    return parsed


# --- Bad input -------------------------------------------------------------------------

LONG_URL = "http://example.com/" + "a" * (2049 - len("http://example.com/"))  # one too many

BAD_BODIES = {
    "invalid-json": ({"data": '{"urls": [', "content_type": "application/json"}, "invalid_json"),
    "not-an-object": ({"json": [SEED]}, "invalid_body"),
    "a-string": ({"json": SEED}, "invalid_body"),
}

BAD_FIELDS = {
    "missing-urls": ({"depth": 1}, "missing_field", "urls"),
    "urls-not-a-list": ({"urls": SEED}, "invalid_value", "urls"),
    "empty-urls": ({"urls": []}, "invalid_value", "urls"),
    "too-many-urls": (
        {"urls": [f"{SEED}/{n}" for n in range(101)], "max_pages": 1000},
        "too_many_urls",
        "urls",
    ),
    "non-string-url": ({"urls": [SEED, 42]}, "invalid_url", "urls[1]"),
    "null-url": ({"urls": [SEED, None]}, "invalid_url", "urls[1]"),
    "ftp-url": ({"urls": [SEED, "ftp://example.com/file.txt"]}, "invalid_url", "urls[1]"),
    "javascript-url": ({"urls": ["javascript:alert(1)"]}, "invalid_url", "urls[0]"),
    "url-too-long": (
        {"urls": [SEED, SEED, LONG_URL]},
        "invalid_url",
        "urls[2]",
    ),
    "depth-too-deep": ({"urls": [SEED], "depth": 4}, "invalid_value", "depth"),
    "depth-negative": ({"urls": [SEED], "depth": -1}, "invalid_value", "depth"),
    "depth-a-string": ({"urls": [SEED], "depth": "1"}, "invalid_value", "depth"),
    "depth-a-fraction": ({"urls": [SEED], "depth": 1.5}, "invalid_value", "depth"),
    "depth-a-bool": ({"urls": [SEED], "depth": True}, "invalid_value", "depth"),
    "max-pages-zero": ({"urls": [SEED], "max_pages": 0}, "invalid_value", "max_pages"),
    "max-pages-too-many": ({"urls": [SEED], "max_pages": 1001}, "invalid_value", "max_pages"),
    "max-pages-a-bool": ({"urls": [SEED], "max_pages": True}, "invalid_value", "max_pages"),
    "more-urls-than-max-pages": (
        {"urls": [f"{SEED}/a", f"{SEED}/b"], "max_pages": 1},
        "invalid_value",
        "max_pages",
    ),
    "unknown-field": ({"urls": [SEED], "deep": 1}, "unknown_field", "deep"),
}


@pytest.mark.parametrize(("request_args", "code"), BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_a_body_that_is_not_a_json_object_is_refused(client, sql, request_args, code):
    before = row_counts(sql)

    response = client.post("/api/jobs", **request_args)

    assert_error(response, 400, code)
    assert row_counts(sql) == before


@pytest.mark.parametrize(("body", "code", "field"), BAD_FIELDS.values(), ids=list(BAD_FIELDS))
def test_a_bad_field_is_refused_naming_it(client, sql, body, code, field):
    before = row_counts(sql)

    response = client.post("/api/jobs", json=body)

    assert_error(response, 400, code, field)
    assert row_counts(sql) == before


@pytest.mark.parametrize(
    "request_args",
    [
        {"data": f"urls={SEED}", "content_type": "application/x-www-form-urlencoded"},
        {"data": json.dumps({"urls": [SEED]}), "content_type": "text/plain"},
        {"data": json.dumps({"urls": [SEED]})},  # no Content-Type at all
        {"data": json.dumps({"urls": [SEED]}), "content_type": "application/vnd.api+json"},
    ],
    ids=["form", "text-plain", "no-content-type", "other-json-type"],
)
def test_only_application_json_is_taken(client, sql, request_args):
    before = row_counts(sql)

    response = client.post("/api/jobs", **request_args)

    assert_error(response, 415, "unsupported_media_type")
    assert row_counts(sql) == before


def test_a_body_over_the_size_limit_is_refused(client, sql, services):
    limit = services.settings.max_request_bytes
    body = json.dumps({"urls": [SEED], "padding": "x" * limit})
    assert len(body) > limit
    before = row_counts(sql)

    response = client.post("/api/jobs", data=body, content_type="application/json")

    assert_error(response, 413, "payload_too_large")
    assert row_counts(sql) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/jobs/{unknown}"),
        ("get", "/api/jobs/{unknown}/pages"),
        ("get", "/api/jobs/{unknown}/words"),
        ("delete", "/api/jobs/{unknown}"),
        ("get", "/api/jobs/not-a-job-id"),
        ("get", "/api/jobs/not-a-job-id/pages"),
        ("delete", "/api/jobs/not-a-job-id"),
        ("get", "/api/no-such-call"),
    ],
)
def test_an_unknown_job_or_call_is_404(client, sql, method, path):
    before = row_counts(sql)

    response = getattr(client, method)(path.format(unknown=uuid.uuid4()))

    assert_error(response, 404, "not_found")
    assert row_counts(sql) == before


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/api/jobs", {"GET", "POST"}),
        ("patch", "/api/jobs/{unknown}", {"GET", "DELETE"}),
        ("post", "/api/jobs/{unknown}/words", {"GET"}),
        ("delete", "/api/health", {"GET"}),
    ],
)
def test_a_method_the_url_does_not_take_is_405(client, sql, method, path, allowed):
    before = row_counts(sql)

    response = getattr(client, method)(path.format(unknown=uuid.uuid4()), json={"urls": [SEED]})

    assert_error(response, 405, "method_not_allowed")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert row_counts(sql) == before


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/jobs?limit=0", "limit"),
        ("/api/jobs?limit=101", "limit"),
        ("/api/jobs?limit=ten", "limit"),
        ("/api/jobs/{unknown}/words?stopwords=maybe", "stopwords"),
        ("/api/jobs/{unknown}/words?limit=-1", "limit"),
        ("/api/jobs/{unknown}/pages?status=lost", "status"),
        ("/api/words/two%20words", "word"),
    ],
)
def test_a_bad_query_parameter_is_refused_naming_it(client, path, field):
    response = client.get(path.format(unknown=uuid.uuid4()))

    assert_error(response, 400, "invalid_value", field)


# --- Rate limit ------------------------------------------------------------------------


@pytest.fixture
def limited(services):
    """A manager that takes 2 submissions per client per minute, and a client of it.

    The limiter counts in this test session's own Redis database (flushed at its end),
    keyed by a client address of this test alone, so no other test shares its counts.
    (Flask-Limiter's Limiter is one object for every app of a process and keeps the first
    key prefix it is given, so the prefix alone would not isolate a second such app.)
    """
    settings = replace(services.settings, submissions_per_minute=2)
    prefix = f"wordcrawl-test-{uuid.uuid4().hex[:8]}"
    app = create_app({"TESTING": True, "RATELIMIT_KEY_PREFIX": prefix}, settings=settings)
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"  # TEST-NET-2, one per test
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return app, client, address


def test_submissions_over_the_limit_get_429_with_retry_after(
    limited, services, sql, fixture_site, workers
):
    app, client, address = limited
    accepted = [submit_job(client, [fixture_site.url("/ok")]) for _ in range(2)]
    before = row_counts(sql)

    response = client.post("/api/jobs", json={"urls": [fixture_site.url("/ok")]})

    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert row_counts(sql) == before
    # Reading is not limited, and the limit is per client: another address may submit.
    assert client.get(f"/api/jobs/{accepted[0]}").status_code == 200
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.254"  # outside the fixture's 1-250
    accepted.append(submit_job(other, [fixture_site.url("/ok")]))
    # The counts live in the test session's own Redis database, keyed by this client.
    broker = redis.Redis.from_url(services.broker_url)
    try:
        # One bucket for every door that makes work (the form, POST /api/jobs, retries).
        assert any(b"submissions" in key for key in broker.keys(f"*{address}*"))
    finally:
        broker.close()
    for job_id in accepted:
        assert wait_for_job(client, job_id)["status"] == "done"


# --- Good calls ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ok_job(app, workers, fixture_site) -> dict:
    """One crawled job of the fixture site's /ok page."""
    client = app.test_client()
    return wait_for_job(client, submit_job(client, [fixture_site.url("/ok")]))


def test_submission_answers_202_with_the_job_url(client, sql, workers, fixture_site):
    before = row_counts(sql)
    # The longest URL the API allows: 2,048 characters.
    url = fixture_site.url("/ok?pad=")
    url += "x" * (2048 - len(url))

    response = client.post("/api/jobs", json={"urls": [url], "depth": 0, "max_pages": 1})

    assert response.status_code == 202
    body = response.get_json()
    assert body == {
        "id": body["id"],
        "status": "queued",
        "url": f"/api/jobs/{body['id']}",
        "token": body["token"],  # shown once: who shows it may cancel or retry the job
    }
    assert uuid.UUID(body["id"])
    assert row_counts(sql) == (before[0] + 1, before[1] + 1, before[2] + 1)
    job = wait_for_job(client, body["id"])
    assert (job["status"], job["urls"]) == ("done", [url])


def test_a_job_has_the_documented_shape_and_times_with_a_timezone(client, ok_job, fixture_site):
    job = client.get(f"/api/jobs/{ok_job['id']}").get_json()

    documented_keys = {"id", "status", "depth", "max_pages", "created_at", "finished_at"}
    assert documented_keys | {"urls", "pages"} <= set(job)
    assert (job["id"], job["status"], job["depth"], job["max_pages"]) == (
        ok_job["id"],
        "done",
        0,
        100,
    )
    assert job["urls"] == [fixture_site.url("/ok")]
    assert job["pages"] == {
        "total": 1,
        "queued": 0,
        "running": 0,
        "done": 1,
        "failed": 0,
        "skipped": 0,
    }
    created, finished = moment(job["created_at"]), moment(job["finished_at"])
    assert created <= finished
    if job.get("started_at") is not None:
        assert created <= moment(job["started_at"]) <= finished


def test_the_job_list_is_newest_first_and_limited(client, workers, fixture_site):
    ids = [submit_job(client, [fixture_site.url("/plain")]) for _ in range(3)]
    for job_id in ids:
        wait_for_job(client, job_id)

    newest = client.get("/api/jobs?limit=3")
    two = client.get("/api/jobs?limit=2").get_json()
    default = client.get("/api/jobs").get_json()

    assert newest.status_code == 200
    assert [job["id"] for job in newest.get_json()] == ids[::-1]
    assert [job["id"] for job in two] == ids[:0:-1]
    assert 3 <= len(default) <= 20
    assert [job["id"] for job in default[:3]] == ids[::-1]
    # Each job of the list is shown as GET /api/jobs/<id> shows it.
    assert newest.get_json()[0] == client.get(f"/api/jobs/{ids[-1]}").get_json()
    times = [moment(job["created_at"]) for job in default]
    assert times == sorted(times, reverse=True)


def test_top_words_leave_stopwords_out_unless_asked(client, ok_job):
    words = f"/api/jobs/{ok_job['id']}/words"

    excluded = client.get(words).get_json()
    top_three = client.get(f"{words}?limit=3&stopwords=exclude").get_json()
    included = client.get(f"{words}?stopwords=include").get_json()
    top_two = client.get(f"{words}?limit=2&stopwords=include").get_json()

    # The /ok page: "the" (3) and "over" (1) are stopwords; ties go by word.
    assert excluded == [
        {"word": "dog", "count": 2},
        {"word": "brown", "count": 1},
        {"word": "fox", "count": 1},
        {"word": "jumps", "count": 1},
        {"word": "lazy", "count": 1},
        {"word": "quick", "count": 1},
        {"word": "sleeps", "count": 1},
    ]
    assert top_three == excluded[:3]
    assert {w["word"]: w["count"] for w in included} == OK_COUNTS
    assert top_two == [{"word": "the", "count": 3}, {"word": "dog", "count": 2}]


def test_a_word_is_found_on_the_pages_that_have_it(client, ok_job, fixture_site):
    found = client.get("/api/words/Sleeps?limit=1000")
    nowhere = client.get(f"/api/words/nowhere{uuid.uuid4().hex[:6]}x").get_json()

    assert found.status_code == 200
    body = found.get_json()
    assert set(body) == {"word", "total", "pages"}
    assert body["word"] == "sleeps"
    assert {"job_id": ok_job["id"], "url": fixture_site.url("/ok"), "count": 1} in body["pages"]
    assert body["total"] >= 1
    assert sum(page["count"] for page in body["pages"]) == body["total"]
    assert nowhere["total"] == 0 and nowhere["pages"] == []


def test_health_reports_broker_database_and_both_workers(client, workers):
    def healthy() -> dict | None:
        response = client.get("/api/health")
        body = response.get_json()
        return body if response.status_code == 200 and body["workers"] >= 2 else None

    report = wait_for(healthy, 10, "/api/health did not report both workers")

    assert (report["broker"], report["database"]) == ("ok", "ok")


# --- Cancel ----------------------------------------------------------------------------


def test_cancel_skips_pages_not_started_and_never_fetches_them(client, workers, fixture_site, sql):
    fetched_before = fixture_site.hits["/delay"]
    # 20 pages of 0.6 s each (under the test workers' 1 s read timeout), far more than the
    # 4 worker slots (2 workers x 2 processes): most are still queued when we cancel.
    urls = [fixture_site.url(f"/delay?ms=600&cancel={n}") for n in range(20)]
    job_id = submit_job(client, urls)

    def started() -> bool:
        return client.get(f"/api/jobs/{job_id}").get_json()["pages"]["running"] >= 1

    wait_for(started, 30, "no page of the job started")
    response = client.delete(f"/api/jobs/{job_id}", headers=as_owner(job_id))

    assert response.status_code == 200
    cancelled = response.get_json()
    assert (cancelled["id"], cancelled["status"]) == (job_id, "cancelled")
    assert cancelled["pages"]["queued"] == 0
    assert cancelled["pages"]["skipped"] >= 1
    moment(cancelled["finished_at"])

    # The pages that had started finish; the job stays cancelled.
    def settled() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        return job if job["pages"]["running"] == 0 else None

    job = wait_for(settled, 30, "the started pages did not finish")
    assert job["status"] == "cancelled"
    assert job["finished_at"] == cancelled["finished_at"]
    skipped = job["pages"]["skipped"]
    # At most the 4 worker slots' pages (and the few they finished first) were not skipped.
    assert skipped >= cancelled["pages"]["skipped"] and skipped >= 20 - 8
    assert job["pages"]["done"] + skipped == 20
    # Of the skipped pages, those already sent to the broker (fair sharing sends a job's
    # pages a few at a time: the others have no task id) reached a worker, which left
    # them alone ...
    sent = sql(
        "SELECT count(*) FROM pages WHERE job_id = :job AND status = 'skipped' "
        "AND task_id IS NOT NULL",
        job=job_id,
    )[0][0]
    assert sent >= 1
    wait_for(
        lambda: (
            sql(
                "SELECT count(*) FROM pages p JOIN celery_taskmeta t ON t.task_id = p.task_id "
                "WHERE p.job_id = :job AND p.status = 'skipped' AND t.status = 'SUCCESS'",
                job=job_id,
            )[0][0]
            == sent
        ),
        30,
        "the tasks of the skipped pages were not all consumed",
    )
    # ... and the site only ever saw the pages that were counted, once each.
    assert fixture_site.hits["/delay"] - fetched_before == job["pages"]["done"]
    skipped_rows = sql(
        "SELECT count(*) FROM pages WHERE job_id = :job AND status = 'skipped' "
        "AND (started_at IS NOT NULL OR worker IS NOT NULL OR word_count IS NOT NULL)",
        job=job_id,
    )
    assert skipped_rows[0][0] == 0


def test_cancelling_an_ended_job_changes_nothing(client, ok_job, sql):
    before = client.get(f"/api/jobs/{ok_job['id']}").get_json()
    pages = sql("SELECT id, status, finished_at FROM pages WHERE job_id = :job", job=ok_job["id"])

    response = client.delete(f"/api/jobs/{ok_job['id']}", headers=as_owner(ok_job["id"]))

    # DELETE is idempotent: the ended job is answered as it is, still done.
    assert response.status_code == 200
    assert response.get_json() == before
    assert before["status"] == "done"
    assert (
        sql("SELECT id, status, finished_at FROM pages WHERE job_id = :job", job=ok_job["id"])
        == pages
    )


def test_activity_shows_pages_per_second_workers_and_the_queue(crawl, client, fixture_site):
    crawl([fixture_site.url(f"/delay?ms=50&activity={n}") for n in range(4)])

    # The numbers are shared by every viewer for a second, so they show the crawl soon after.
    def counted() -> dict | None:
        response = client.get("/api/activity?minutes=5")
        assert response.status_code == 200
        activity = response.get_json()
        return activity if sum(w["done"] for w in activity["workers"]) >= 4 else None

    activity = wait_for(counted, 5, "the activity never counted the crawl's pages")
    assert activity["minutes"] == 5 and activity["bucket_seconds"] == 5
    assert sum(bucket["pages"] for bucket in activity["pages_ended"]) >= 4
    assert isinstance(activity["queue_length"], int)
    online = {w["name"] for w in activity["workers"] if w["online"]}
    assert {node_name("w1"), node_name("w2")} <= online
    assert sum(w["done"] for w in activity["workers"]) >= 4
    newest = activity["newest_pages"][0]
    assert newest.keys() == {"job_id", "url", "status", "worker", "elapsed_ms", "finished_at"}


def test_activity_shows_each_workers_cpu_pages_in_flight_and_the_queues_wait(
    client, workers, fixture_site
):
    tag = uuid.uuid4().hex[:8]
    job_id = submit_job(
        client, [fixture_site.url(f"/delay?ms=300&flight={tag}&n={n}") for n in range(12)]
    )
    ours = {node_name("w1"), node_name("w2")}

    def in_flight() -> dict | None:
        activity = client.get("/api/activity").get_json()
        rows = [w for w in activity["workers"] if w["name"] in ours]
        return activity if any(w["running"] > 0 for w in rows) else None

    during = wait_for(in_flight, 30, "no page was ever seen running")
    assert wait_for_job(client, job_id, timeout=60)["status"] == "done"

    def all_ended() -> dict | None:  # the numbers are shared by every viewer for a second
        activity = client.get("/api/activity").get_json()
        return activity if activity["queue_wait"]["pages"] >= 12 else None

    after = wait_for(all_ended, 5, "the activity never counted every page")

    for activity in (during, after):
        rows = {w["name"]: w for w in activity["workers"] if w["name"] in ours}
        assert rows.keys() == ours
        for w in rows.values():
            assert w["online"] and w["host"] == socket.gethostname()
            assert w["cpus"] == psutil.cpu_count()
            assert w["page_slots"] >= 2  # WORDCRAWL_WORKER_CONCURRENCY=2, pages per task >= 1
            assert w["running"] >= 0
            # Its main and pool processes: at most all the machine's CPUs (and some slack
            # for two readings that do not cover quite the same span).
            assert 0 <= w["cpu_percent"] <= 110 * w["cpus"]
            assert w["cpu_machine_percent"] == pytest.approx(w["cpu_percent"] / w["cpus"], abs=0.1)
        machine = next(m for m in activity["machines"] if m["host"] == socket.gethostname())
        assert ours <= set(machine["workers"])
        assert 0 <= machine["busy_percent"] <= 100
        assert activity["bound"]["kind"] in {kind for kind, _ in RULES}
        assert activity["bound"]["text"]
    assert set(during["busiest_site"]) == {"site", "running"}
    assert during["busiest_site"]["running"] >= 1

    # All 12 pages ended moments ago: they count in the recent pages per second, and each
    # waited in the queue a while (12 pages for a few slots at 300 ms each), never long.
    recent = [
        w["pages_per_second"] * after["queue_wait"]["window_seconds"] for w in after["workers"]
    ]
    assert sum(recent) >= 12 - 0.5
    wait = after["queue_wait"]
    assert wait["pages"] >= 12 and wait["window_seconds"] == 30
    assert 0 <= wait["p50_seconds"] <= wait["p95_seconds"] < 30
    assert wait["p95_seconds"] > 0  # not every page found a free slot at once
