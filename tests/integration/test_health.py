"""Health, activity and the manager under read load, from the workers' census.

`/api/health` and `/api/activity` count the workers alive in the census (one Redis round
trip), never a broadcast ping per request: a census entry no process stands behind is
counted, a worker that starts is seen and one that stops is forgotten. Every statement
of the web side has a timeout: a table locked elsewhere answers 503, not a hung thread.
`wordcrawl load --get` reads at a steady rate while a crawl runs, and every answer is 200.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import submit_job, wait_for_job
from processes import WorkerPool, node_name, wait_for
from sqlalchemy import text
from test_web import page

from job_manager import create_app
from job_tasks.storing import db as job_db
from job_tasks.upkeep.heartbeat import census_for


def online(client) -> set[str]:
    return {w["name"] for w in client.get("/api/activity").get_json()["workers"] if w["online"]}


def test_health_and_activity_count_the_workers_in_the_census(client, workers, services):
    census = census_for(services.settings)
    ghost = f"ghost-{uuid.uuid4().hex[:6]}@nowhere"  # no process: no ping would ever find it
    before = client.get("/api/health").get_json()["workers"]

    census.report(ghost, {"pid": 0})
    try:
        health = client.get("/api/health")
        assert health.status_code == 200
        assert health.get_json() == {"broker": "ok", "database": "ok", "workers": before + 1}
        # The dashboard's numbers are shared by all its viewers for a second.
        wait_for(lambda: ghost in online(client), 5, "the dashboard never showed the worker")
    finally:
        census.forget(ghost)

    assert client.get("/api/health").get_json()["workers"] == before
    wait_for(lambda: ghost not in online(client), 5, "the dashboard still shows the worker")


@pytest.mark.slow
def test_a_worker_that_starts_is_seen_and_one_that_stops_is_forgotten(
    client, workers, worker_env, services, tmp_path_factory: pytest.TempPathFactory
):
    before = client.get("/api/health").get_json()["workers"]
    pool = WorkerPool(worker_env, Path(tmp_path_factory.mktemp("census-worker")))
    pool.start("census")
    try:
        wait_for(
            lambda: client.get("/api/health").get_json()["workers"] == before + 1,
            15,
            "the new worker never appeared in /api/health",
        )
        wait_for(lambda: node_name("census") in online(client), 5, "not on the dashboard")
        # Its report says what the dashboard shows of it: its slots, and its CPU by the
        # next beat (the first reading covers the time since the worker started).
        report = census_for(services.settings).alive()[node_name("census")]
        assert report["page_slots"] >= report["concurrency"] == 2
        assert report["cpus"] >= 1 and report["host"]
        assert report["cpu_percent"] >= 0 and 0 <= report["machine_busy_percent"] <= 100
    finally:
        pool.stop_all()  # a warm shutdown: the worker takes itself out of the census

    assert client.get("/api/health").get_json()["workers"] == before
    # The dashboard's numbers are shared by all its viewers for a second.
    wait_for(lambda: node_name("census") not in online(client), 5, "still on the dashboard")


@pytest.fixture
def locked_table(services):
    """Hold an exclusive lock on job_urls (read by every job's page) until released."""
    engine = job_db.get_engine(services.database_url)
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("LOCK TABLE job_urls IN ACCESS EXCLUSIVE MODE"))
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    yield
    release.set()
    thread.join(30)


def test_a_statement_past_its_timeout_answers_503_not_a_hung_thread(services, locked_table):
    settings = replace(services.settings, statement_timeout_ms=300)
    client = create_app({"TESTING": True}, settings=settings).test_client()

    api = client.get("/api/jobs")
    web = client.get("/")

    assert api.status_code == 503
    assert api.get_json()["error"] == {
        "code": "unavailable",
        "message": "the database took too long to answer; try again in a moment",
        "field": None,
    }
    assert web.status_code == 503
    assert "took too long" in page(web).select_one("#error-message").get_text()


@pytest.mark.slow
def test_the_manager_answers_every_read_under_load_while_a_crawl_runs(
    manager_url, client, fixture_site
):
    tag = uuid.uuid4().hex
    job_id = submit_job(
        client, [fixture_site.url(f"/delay?ms=200&load={tag}&n={n}") for n in range(30)]
    )
    env = {**os.environ, "WORDCRAWL_API_URL": manager_url}
    reads = ["--get", "/api/health", "--get", "/api/activity", "--seconds", "3", "--rate", "50"]

    result = subprocess.run(
        [sys.executable, "-m", "wordcrawl", "load", *reads],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)  # the figures (pytest -s shows them); timings belong to benchmarks
    assert "requests        150 in" in result.stdout
    assert "answers         200: 150" in result.stdout
    assert "server errors   0 (5xx), 0 unanswered" in result.stdout
    assert "not JSON        0" in result.stdout
    for line in ("latency p50", "latency p95", "latency p99"):
        assert line in result.stdout
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] in ("queued", "running", "done")
    assert wait_for_job(client, job_id, timeout=60)["status"] == "done"
