"""Schedules (docs/reference.md, "Schedules") against real Redis, PostgreSQL, workers and
beats.

A submission with a "schedule" answers 201 and starts no job; a tick (the start_due_runs
task, run by a real worker) starts one run per due period, an ordinary job that crawls;
two `wordcrawl beat` processes at once still start exactly one run per period; the diff
of two runs gives the words that changed most; the web pages make, show, pause, resume
and delete schedules. Bad input answers the API's error body and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    OWNER_HEADERS,
    as_owner,
    bearer,
    client_at,
    row_counts,
    submit_job,
    wait_for_job,
)
from fixture_site import OK_COUNTS
from processes import wait_for
from sqlalchemy import text
from test_web import form_token, page

from job_tasks.celeryconfig import START_DUE_RUNS
from job_tasks.storing import db as job_db
from job_tasks.storing.schedule_runs import start_due
from job_tasks.tasks import start_due_runs

SCHEDULE_FIELDS = {"id", "urls", "depth", "max_pages", "schedule", "paused", "runs_url"}
TICK_TASK = START_DUE_RUNS


@pytest.fixture
def execute(services):
    """Run SQL that changes the test database (committed at once)."""
    engine = job_db.get_engine(services.database_url)

    def run(query: str, **params: object) -> None:
        with engine.begin() as conn:
            conn.execute(text(query), params)

    return run


@pytest.fixture(autouse=True)
def no_schedule_outlives_its_test(execute) -> Iterator[None]:
    """Delete every schedule after each test, so no later tick starts runs of it."""
    yield
    execute("DELETE FROM schedules")


def create(client, urls: list[str], timing: dict, **fields: object) -> dict:
    """Submit a schedule through the API; return it as GET shows it (as_owner(id) gives
    the token the answer carried)."""
    response = client.post("/api/jobs", json={"urls": urls, "schedule": timing, **fields})
    assert response.status_code == 201, response.get_json()
    schedule = response.get_json()
    OWNER_HEADERS[schedule["id"]] = bearer(schedule.pop("token"))
    return schedule


def tick() -> int:
    """Send one tick to the real workers, as beat does; return how many runs it started.

    A tick keeps no result: this one asks for it, and then removes it."""
    result = start_due_runs.apply_async(ignore_result=False)
    try:
        return result.get(timeout=30)
    finally:
        result.forget()


def runs_of(sql, schedule_id: str) -> int:
    return sql("SELECT count(*) FROM jobs WHERE schedule_id = :id", id=schedule_id)[0][0]


def make_due(execute, schedule_id: str) -> None:
    """Let the next period come now."""
    execute("UPDATE schedules SET next_run_at = now() WHERE id = :id", id=schedule_id)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return body["error"]


# --- The API ----------------------------------------------------------------------------


def test_a_submission_with_a_schedule_answers_201_with_the_schedule(client, sql, fixture_site):
    before = row_counts(sql)
    url = fixture_site.url("/ok")

    every = create(client, [url], {"every_minutes": 15}, depth=1, max_pages=7)
    cron = create(client, [url], {"cron": "0  6 * * mon-fri"})

    assert set(every) >= SCHEDULE_FIELDS
    assert every["urls"] == [url] and (every["depth"], every["max_pages"]) == (1, 7)
    assert every["schedule"] == {"every_minutes": 15} and every["paused"] is False
    assert (every["runs_skipped"], every["last_skipped_at"]) == (0, None)
    assert every["runs_url"] == f"/api/schedules/{every['id']}/runs"
    assert cron["schedule"] == {"cron": "0 6 * * mon-fri"}
    assert cron["next_run_at"].endswith("06:00:00+00:00")
    assert row_counts(sql) == before  # a schedule, not a job: runs come from ticks
    listed = client.get("/api/schedules").get_json()
    assert [s["id"] for s in listed[:2]] == [cron["id"], every["id"]]  # newest first
    assert client.get(f"/api/schedules/{every['id']}").get_json() == every
    assert client.get(every["runs_url"]).get_json() == []


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"schedule": {"every_minutes": 0}}, "invalid_value", "schedule.every_minutes"),
        ({"schedule": {"every_minutes": "5"}}, "invalid_value", "schedule.every_minutes"),
        ({"schedule": {"every_minutes": True}}, "invalid_value", "schedule.every_minutes"),
        ({"schedule": {"cron": "* * * *"}}, "invalid_value", "schedule.cron"),
        ({"schedule": {"cron": "99 * * * *"}}, "invalid_value", "schedule.cron"),
        ({"schedule": {"cron": "0 0 31 2 *"}}, "invalid_value", "schedule.cron"),
        ({"schedule": {"hourly": True}}, "invalid_value", "schedule"),
        ({"schedule": "every day"}, "invalid_value", "schedule"),
        ({"schedule": None}, "invalid_value", "schedule"),
        ({"schedule": {"every_minutes": 15}, "urls": ["ftp://x/"]}, "invalid_url", "urls[0]"),
        ({"schedule": {"every_minutes": 15}, "depth": 9}, "invalid_value", "depth"),
        ({"schedule": {"every_minutes": 15}, "when": 1}, "unknown_field", "when"),
        # Closer than WORDCRAWL_MIN_SCHEDULE_MINUTES (10): every 5, or a cron line's runs.
        ({"schedule": {"every_minutes": 5}}, "invalid_value", "schedule.every_minutes"),
        ({"schedule": {"cron": "*/5 * * * *"}}, "invalid_value", "schedule.cron"),
        ({"schedule": {"cron": "0,55 0,23 * * *"}}, "invalid_value", "schedule.cron"),
    ],
)
def test_bad_schedules_answer_400_and_create_nothing(client, sql, body, code, field):
    before = sql("SELECT count(*) FROM schedules")[0][0], row_counts(sql)

    response = client.post("/api/jobs", json={"urls": ["http://example.com/"], **body})

    error = error_of(response, 400)
    assert (error["code"], error["field"]) == (code, field)
    assert (sql("SELECT count(*) FROM schedules")[0][0], row_counts(sql)) == before


@pytest.mark.parametrize("schedule_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_schedule_is_404_everywhere(client, schedule_id):
    base = f"/api/schedules/{schedule_id}"
    for response in (
        client.get(base),
        client.get(f"{base}/runs"),
        client.get(f"{base}/diff"),
        client.patch(base, json={"paused": True}),
        client.delete(base),
    ):
        assert error_of(response, 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "paused"),
        ({"paused": "yes"}, "paused"),
        ({"paused": 1}, "paused"),
        ({"paused": True, "every_minutes": 1}, "every_minutes"),
        ([True], None),
    ],
)
def test_a_bad_patch_answers_400_and_changes_nothing(client, body, field):
    schedule = create(client, ["http://example.com/"], {"every_minutes": 15})
    owner = as_owner(schedule["id"])

    error = error_of(
        client.patch(f"/api/schedules/{schedule['id']}", json=body, headers=owner), 400
    )

    assert error["field"] == field
    assert client.get(f"/api/schedules/{schedule['id']}").get_json() == schedule


def test_a_patch_must_be_json(client):
    schedule = create(client, ["http://example.com/"], {"every_minutes": 15})
    url = f"/api/schedules/{schedule['id']}"
    owner = as_owner(schedule["id"])

    assert error_of(client.patch(url, data={"paused": "true"}, headers=owner), 415)["code"] == (
        "unsupported_media_type"
    )
    not_json = client.patch(url, data="{", content_type="application/json", headers=owner)
    assert error_of(not_json, 400)["code"] == "invalid_json"


def test_a_paused_schedule_starts_no_run_until_resumed(client, sql, workers, fixture_site):
    schedule = create(client, [fixture_site.url("/ok")], {"every_minutes": 60})
    url = f"/api/schedules/{schedule['id']}"

    paused = client.patch(url, json={"paused": True}, headers=as_owner(schedule["id"])).get_json()
    assert paused["paused"] is True and paused["next_run_at"] is None
    assert tick() == 0
    assert runs_of(sql, schedule["id"]) == 0

    resumed = client.patch(url, json={"paused": False}, headers=as_owner(schedule["id"])).get_json()
    assert resumed["paused"] is False
    assert resumed["next_run_at"] == schedule["next_run_at"]  # missed: it runs at once
    assert tick() == 1
    assert runs_of(sql, schedule["id"]) == 1


def test_runs_are_jobs_that_crawl_and_outlive_their_schedule(client, sql, workers, fixture_site):
    schedule = create(client, [fixture_site.url("/ok")], {"every_minutes": 60})

    assert tick() == 1
    assert tick() == 0  # the next period is an hour away
    [run] = client.get(schedule["runs_url"]).get_json()
    assert run["schedule_id"] == schedule["id"] and run["urls"] == schedule["urls"]
    done = wait_for_job(client, run["id"])
    assert done["status"] == "done" and done["pages"]["done"] == 1
    words = client.get(f"/api/jobs/{run['id']}/words?stopwords=include").get_json()
    assert {w["word"]: w["count"] for w in words} == OK_COUNTS
    after = client.get(f"/api/schedules/{schedule['id']}").get_json()
    assert after["last_run_at"] is not None and after["next_run_at"] > schedule["next_run_at"]

    deleted = client.delete(f"/api/schedules/{schedule['id']}", headers=as_owner(schedule["id"]))
    assert deleted.status_code == 200 and deleted.get_json()["id"] == schedule["id"]
    assert client.get(f"/api/schedules/{schedule['id']}").status_code == 404
    kept = client.get(f"/api/jobs/{run['id']}").get_json()
    assert kept["status"] == "done" and kept["schedule_id"] == schedule["id"]
    # A job submitted once names no schedule.
    once = client.get(f"/api/jobs/{submit_job(client, ['http://example.com/'])}").get_json()
    assert once["schedule_id"] is None


# --- Exactly one run per period ----------------------------------------------------------


def test_ticks_racing_for_one_period_start_one_run(client, sql, services, fixture_site):
    """Eight ticks read the same due schedule at once; the conditional UPDATE lets one win."""
    schedule = create(client, [fixture_site.url("/ok")], {"every_minutes": 60})
    sessions = job_db.get_sessionmaker(services.database_url)
    ready = threading.Barrier(8)
    started: list[list[uuid.UUID]] = []

    def one_tick() -> None:
        ready.wait()
        started.append(start_due(sessions, services.settings.job_tasks_in_broker))

    threads = [threading.Thread(target=one_tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(started) == 8
    assert sorted(len(jobs) for jobs in started) == [0] * 7 + [1]
    assert runs_of(sql, schedule["id"]) == 1


@contextlib.contextmanager
def beats(env: dict[str, str], log_dir: Path, count: int) -> Iterator[list[Path]]:
    """Run `wordcrawl beat` processes (the real command); yield their log files."""
    processes: list[subprocess.Popen] = []
    logs = [log_dir / f"beat{n}.log" for n in range(count)]
    try:
        for log_path in logs:
            with open(log_path, "ab") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "wordcrawl", "beat"],
                        env=env,
                        cwd=log_dir,  # where a file-keeping scheduler would write its file
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        yield logs
        for process, log_path in zip(processes, logs, strict=True):
            assert process.poll() is None, f"beat exited early: {log_path.read_text()}"
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ticks_done(workers) -> int:
    """How many ticks workers have finished (their logs say so: a tick keeps no result)."""
    logs = [workers.log_path(name).read_text(errors="replace") for name in workers.processes]
    return sum(log.count(f"{TICK_TASK}[") for log in logs) // 2  # received, then succeeded


@pytest.mark.slow
def test_two_beats_at_once_start_exactly_one_run_per_period(
    client, sql, execute, workers, worker_env, fixture_site, tmp_path
):
    schedule = create(client, [fixture_site.url("/ok")], {"every_minutes": 60})
    env = {
        **os.environ,
        **worker_env,
        "WORDCRAWL_SCHEDULE_TICK_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    periods = 4

    with beats(env, tmp_path, 2) as logs:
        for period in range(1, periods + 1):
            if period > 1:
                make_due(execute, schedule["id"])
            wait_for(
                lambda n=period: runs_of(sql, schedule["id"]) >= n,
                30,
                f"period {period} started no run; beat logs in {tmp_path}",
            )
            # The next period starts a run only once this one has ended (else: skipped).
            [newest, *_] = client.get(schedule["runs_url"]).get_json()
            wait_for_job(client, newest["id"])
        # Both beats go on ticking after the last claim: four more ticks, and still one
        # run per period.
        seen = ticks_done(workers)
        wait_for(lambda: ticks_done(workers) >= seen + 4, 30, "the beats stopped ticking")
        assert runs_of(sql, schedule["id"]) == periods
        for log in logs:
            assert "Sending due task start-due-runs" in log.read_text(), log
    assert not list(tmp_path.glob("celerybeat-schedule*"))  # in memory: no schedule file
    runs = client.get(f"{schedule['runs_url']}?limit=100").get_json()
    assert len(runs) == periods and all(run["schedule_id"] == schedule["id"] for run in runs)
    for run in runs:
        assert wait_for_job(client, run["id"])["status"] == "done"


# --- Comparing two runs ------------------------------------------------------------------


@pytest.fixture
def two_runs(client, sql, execute, workers, fixture_site) -> tuple[dict, str, str]:
    """A schedule with two done runs of /ok; the second run's page changed by SQL:
    fox 1 -> 7, lazy 1 -> gone, cat new with 4 (as if the page had been edited)."""
    schedule = create(client, [fixture_site.url("/ok")], {"every_minutes": 60})
    assert tick() == 1
    [first] = client.get(schedule["runs_url"]).get_json()
    assert wait_for_job(client, first["id"])["status"] == "done"  # else the next is skipped
    make_due(execute, schedule["id"])
    assert tick() == 1
    newest, oldest = (run["id"] for run in client.get(schedule["runs_url"]).get_json())
    assert wait_for_job(client, newest)["status"] == "done"
    page = "(SELECT id FROM pages WHERE job_id = :job)"
    execute(f"UPDATE word_counts SET count = 7 WHERE word = 'fox' AND page_id = {page}", job=newest)
    execute(f"DELETE FROM word_counts WHERE word = 'lazy' AND page_id = {page}", job=newest)
    execute(
        "INSERT INTO word_counts SELECT id, 'cat', 4 FROM pages WHERE job_id = :job", job=newest
    )
    return schedule, oldest, newest


@pytest.mark.slow
def test_the_diff_gives_the_largest_changes_first(client, two_runs):
    schedule, oldest, newest = two_runs
    diff_url = f"/api/schedules/{schedule['id']}/diff"
    expected = [
        {"word": "fox", "from_count": 1, "to_count": 7, "change": 6},
        {"word": "cat", "from_count": 0, "to_count": 4, "change": 4},
        {"word": "lazy", "from_count": 1, "to_count": 0, "change": -1},
    ]

    assert client.get(diff_url).get_json() == expected  # the two newest done runs
    assert client.get(f"{diff_url}?from={oldest}&to={newest}&limit=20").get_json() == expected
    assert client.get(f"{diff_url}?from={oldest}&to={newest}&limit=1").get_json() == expected[:1]
    backwards = client.get(f"{diff_url}?from={newest}&to={oldest}").get_json()
    assert [(row["word"], row["change"]) for row in backwards] == [
        ("fox", -6),
        ("cat", -4),
        ("lazy", 1),
    ]
    assert client.get(f"{diff_url}?from={newest}&to={newest}").get_json() == []


@pytest.mark.slow
def test_the_diff_refuses_jobs_that_are_not_its_runs(client, two_runs):
    schedule, oldest, newest = two_runs
    diff_url = f"/api/schedules/{schedule['id']}/diff"
    other = submit_job(client, ["http://example.com/"])
    lonely = create(client, ["http://example.com/"], {"every_minutes": 60})

    cases = [
        (f"?from={oldest}", 400, "missing_field", "to"),
        (f"?to={newest}", 400, "missing_field", "from"),
        (f"?from=nope&to={newest}", 400, "invalid_value", "from"),
        (f"?from={oldest}&to={uuid.uuid4()}", 404, "not_found", "to"),
        (f"?from={other}&to={newest}", 404, "not_found", "from"),
        (f"?from={oldest}&to={newest}&limit=0", 400, "invalid_value", "limit"),
        ("?stopwords=maybe", 400, "invalid_value", "stopwords"),
    ]
    for query, status, code, field in cases:
        error = error_of(client.get(diff_url + query), status)
        assert (error["code"], error["field"]) == (code, field), query
    # A schedule without two done runs has nothing to compare yet.
    assert error_of(client.get(f"/api/schedules/{lonely['id']}/diff"), 404)["code"] == ("not_found")


# --- The web pages -----------------------------------------------------------------------


# `browser` (conftest.py): a client of the manager with CSRF protection on.


def test_the_form_makes_a_schedule_and_its_page_pauses_resumes_deletes(browser, sql):
    token = form_token(page(browser.get("/")), "submit-form")
    before = row_counts(sql)

    made = browser.post(
        "/", data={"csrf_token": token, "urls": "http://example.com/", "every_minutes": "15"}
    )

    assert made.status_code == 303
    schedule_url = made.headers["Location"]
    assert schedule_url.startswith("/schedules/") and row_counts(sql) == before
    shown = page(browser.get(schedule_url))
    assert "Every 15 minutes" in shown.select_one("#schedule-timing").get_text(" ", strip=True)
    assert shown.select_one("#no-runs") and shown.select_one("#no-changes")
    assert browser.post(f"{schedule_url}/pause").status_code == 400  # no CSRF token

    paused = browser.post(
        f"{schedule_url}/pause", data={"csrf_token": form_token(shown, "pause-form")}
    )
    assert paused.status_code == 303
    shown = page(browser.get(schedule_url))
    assert shown.select_one("#schedule-state").get_text(strip=True) == "paused"
    resumed = browser.post(
        f"{schedule_url}/resume", data={"csrf_token": form_token(shown, "resume-form")}
    )
    assert resumed.status_code == 303
    shown = page(browser.get(schedule_url))
    assert shown.select_one("#schedule-state").get_text(strip=True) == "active"
    listed = page(browser.get("/schedules"))
    assert listed.select_one(f"#schedules a[href='{schedule_url}']")

    deleted = browser.post(
        f"{schedule_url}/delete", data={"csrf_token": form_token(shown, "delete-form")}
    )
    assert deleted.status_code == 303 and deleted.headers["Location"] == "/schedules"
    assert browser.get(schedule_url).status_code == 404


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"every_minutes": "0"}, "every_minutes must be"),
        ({"every_minutes": "x"}, "minutes must be a whole number"),
        ({"cron": "* * *"}, "5 fields"),
        ({"every_minutes": "5", "cron": "* * * * *"}, "not both"),
    ],
)
def test_a_bad_repeat_is_shown_on_the_form_and_creates_nothing(browser, sql, fields, says):
    token = form_token(page(browser.get("/")), "submit-form")
    before = sql("SELECT count(*) FROM schedules")[0][0], row_counts(sql)

    response = browser.post(
        "/", data={"csrf_token": token, "urls": "http://example.com/", **fields}
    )

    assert response.status_code == 400
    assert says in page(response).select_one("#form-error").get_text()
    assert (sql("SELECT count(*) FROM schedules")[0][0], row_counts(sql)) == before


@pytest.mark.slow
def test_the_schedule_page_shows_runs_and_what_changed(browser, two_runs):
    schedule, oldest, newest = two_runs

    shown = page(browser.get(f"/schedules/{schedule['id']}"))

    runs = [a["href"] for a in shown.select("#runs a")]
    assert runs == [f"/jobs/{newest}", f"/jobs/{oldest}"]
    changes = [
        [cell.get_text(strip=True) for cell in row.select("td")]
        for row in shown.select("#changes tbody tr")
    ]
    assert changes == [["fox", "1", "7", "+6"], ["cat", "0", "4", "+4"], ["lazy", "1", "0", "-1"]]
    run_page = page(browser.get(f"/jobs/{newest}"))
    assert run_page.select_one("#job-schedule a")["href"] == f"/schedules/{schedule['id']}"


# --- The class server's bounds: the floor, overlapping runs, the cap per client ------------


def test_a_schedule_closer_than_the_floor_is_refused_saying_the_floor_and_the_gap(client, sql):
    before = sql("SELECT count(*) FROM schedules")[0][0]

    every = client.post(
        "/api/jobs", json={"urls": ["http://example.com/"], "schedule": {"every_minutes": 9}}
    )
    cron = client.post(
        "/api/jobs", json={"urls": ["http://example.com/"], "schedule": {"cron": "0,5 * * * *"}}
    )

    assert error_of(every, 400)["message"] == (
        "runs every 9 minutes: closer than this server allows "
        "(at least 10 minutes between two runs of a schedule)"
    )
    assert error_of(cron, 400)["message"] == (
        "runs of this cron line can come 5 minutes apart: closer than this server allows "
        "(at least 10 minutes between two runs of a schedule)"
    )
    assert sql("SELECT count(*) FROM schedules")[0][0] == before
    assert create(client, ["http://example.com/"], {"every_minutes": 10})  # the floor itself


@pytest.mark.slow
def test_a_run_due_while_the_previous_one_is_open_is_skipped_and_recorded(
    client, browser, sql, execute, services, workers, fixture_site
):
    # Six pages of 0.9 s, three at a time on the site: the run stays open for seconds.
    slow = [fixture_site.url(f"/delay?ms=900&overlap={uuid.uuid4().hex}") for _ in range(6)]
    schedule = create(client, slow, {"every_minutes": 60})
    sessions = job_db.get_sessionmaker(services.database_url)
    in_broker = services.settings.job_tasks_in_broker
    assert len(start_due(sessions, in_broker)) == 1
    [run] = client.get(schedule["runs_url"]).get_json()

    make_due(execute, schedule["id"])
    assert start_due(sessions, in_broker) == []  # the first run is still open

    skipped = client.get(f"/api/schedules/{schedule['id']}").get_json()
    assert skipped["runs_skipped"] == 1 and skipped["last_skipped_at"] is not None
    assert skipped["next_run_at"] > skipped["last_skipped_at"]  # the period was claimed
    assert start_due(sessions, in_broker) == []  # ... once: nothing is due any more
    assert client.get(f"/api/schedules/{schedule['id']}").get_json()["runs_skipped"] == 1
    assert runs_of(sql, schedule["id"]) == 1
    shown = page(browser.get(f"/schedules/{schedule['id']}"))
    said = " ".join(shown.select_one("#runs-skipped").get_text().split())
    assert said.startswith("1 run skipped because the previous one was still running")
    # Once the run has ended, the next period runs again.
    assert wait_for_job(client, run["id"], timeout=60)["status"] == "done"
    make_due(execute, schedule["id"])
    assert len(start_due(sessions, in_broker)) == 1
    assert runs_of(sql, schedule["id"]) == 2


def test_one_client_keeps_at_most_five_active_schedules(app, client, sql):
    url = ["http://example.com/"]
    mine = [create(client, url, {"every_minutes": 60}) for _ in range(5)]
    before = sql("SELECT count(*) FROM schedules")[0][0]

    sixth = client.post("/api/jobs", json={"urls": url, "schedule": {"every_minutes": 60}})

    error = error_of(sixth, 429)
    assert error["code"] == "too_many_schedules" and "(5)" in error["message"]
    assert sql("SELECT count(*) FROM schedules")[0][0] == before
    # Another client is not counted with this one.
    elsewhere = client_at(app, "10.20.30.40")
    assert create(elsewhere, url, {"every_minutes": 60})
    # A paused schedule does not count; unpausing it counts again.
    first = f"/api/schedules/{mine[0]['id']}"
    owner = as_owner(mine[0]["id"])
    assert client.patch(first, json={"paused": True}, headers=owner).status_code == 200
    sixth = create(client, url, {"every_minutes": 60})
    refused = client.patch(first, json={"paused": False}, headers=owner)
    assert error_of(refused, 429)["code"] == "too_many_schedules"
    assert client.get(first).get_json()["paused"] is True
    delete = client.delete(f"/api/schedules/{sixth['id']}", headers=as_owner(sixth["id"]))
    assert delete.status_code == 200
    assert client.patch(first, json={"paused": False}, headers=owner).status_code == 200
    # What is stored is a keyed hash of the client, never its address.
    keys = {row[0] for row in sql("SELECT DISTINCT client_key FROM schedules")}
    assert len(keys) == 2 and all(re.fullmatch("[0-9a-f]{64}", key) for key in keys)
    assert not sql("SELECT 1 FROM schedules WHERE client_key LIKE '%127.0.0.1%'")
