"""The viewer: Flower as wordcrawl starts it (job_viewer), against the session's workers.

Flower runs as a real subprocess with the command `wordcrawl up` uses, on a free port and
with a database file of its own, so it never meets a Flower a person is running. It must
ask for a password on its API, show both workers, serve /metrics to Prometheus without one,
and show which worker ran each task of a crawl, and in a browser list the crawl's tasks (a
screenshot goes to test-artifacts/); without FLOWER_BASIC_AUTH it must refuse to start at
all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from chromium import CHROMIUM, CHROMIUM_ARGS, MISSING, screenshot_path
from processes import node_name, wait_for
from prometheus_client.parser import text_string_to_metric_families

from job_tasks.tasks import crawl_pages
from job_viewer import flower_command
from job_worker import beat_command
from wordcrawl.local.services import free_port

pytestmark = pytest.mark.slow  # starts Flower

AUTH = ("user", "pass")
START_TIMEOUT = 60.0


@dataclass
class Flower:
    """A running Flower and where its API is."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def get(self, path: str, auth: tuple[str, str] | None = AUTH, **params: object):
        return requests.get(self.url + path, auth=auth, params=params, timeout=10)


def flower_env(services_env: dict[str, str], basic_auth: str | None) -> dict[str, str]:
    """The environment Flower gets: the test broker, and credentials when given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWER_")}
    env.update(services_env, PYTHONUNBUFFERED="1")
    if basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    return env


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Terminate a process started in its own session, wait, kill it (and its group) if needed."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def flower(services, workers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    """Flower with basic auth user:pass on a free port, watching the session's workers."""
    folder = tmp_path_factory.mktemp("flower")
    port = free_port()
    log_path = folder / "flower.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            flower_command(port, folder / "flower.db"),
            env=flower_env(services.env, ":".join(AUTH)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    viewer = Flower(f"http://127.0.0.1:{port}", process, log_path)
    try:

        def answers() -> bool:
            assert process.poll() is None, f"Flower exited:\n{_log_tail(log_path)}"
            try:
                return viewer.get("/healthcheck", auth=None).ok
            except requests.ConnectionError:
                return False

        wait_for(answers, START_TIMEOUT, f"Flower did not answer; log in {log_path}")
        yield viewer
    finally:
        stop_process(process)


def test_flower_api_needs_credentials(flower):
    assert flower.get("/api/workers", auth=None).status_code == 401
    assert flower.get("/api/workers", auth=("user", "wrong")).status_code == 401
    assert flower.get("/api/tasks", auth=None).status_code == 401


def test_flower_lists_both_workers(flower):
    wanted = {node_name("w1"), node_name("w2")}

    def listed() -> dict | None:
        response = flower.get("/api/workers", refresh=1)
        assert response.status_code == 200, response.text
        return response.json() if wanted <= set(response.json()) else None

    workers = wait_for(listed, 30, f"Flower did not list {sorted(wanted)}", interval=0.5)
    assert workers[node_name("w1")]["stats"]["pid"] != workers[node_name("w2")]["stats"]["pid"]

    # The event stream (heartbeats) shows them alive too: Flower sees what they send.
    def alive() -> bool:
        status = flower.get("/api/workers", status=1).json()
        return all(status.get(name) for name in wanted)

    wait_for(alive, 30, "Flower's event stream did not show both workers alive", interval=0.5)


def test_flower_metrics_answer_without_credentials_for_prometheus(flower):
    # Prometheus scrapes Flower's /metrics (compose profile `metrics`) with no password:
    # Flower 2.2 serves it, like /healthcheck, outside its basic auth.
    wanted = {node_name("w1"), node_name("w2")}

    def workers_online() -> set[str]:
        response = flower.get("/metrics", auth=None)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert "flower_events" in families  # flower_events_total, a counter
        online = families.get("flower_worker_online")
        return {s.labels["worker"] for s in online.samples if s.value == 1} if online else set()

    wait_for(lambda: wanted <= workers_online(), 30, "Flower's /metrics did not show both workers")


def test_flower_shows_which_worker_ran_each_task_of_a_crawl(flower, crawl, client, demo_site):
    # Flower records only the task events it receives: be sure it hears the workers first.
    wanted = {node_name("w1"), node_name("w2")}
    wait_for(
        lambda: all(flower.get("/api/workers", status=1).json().get(name) for name in wanted),
        30,
        "Flower's event stream did not show both workers alive",
        interval=0.5,
    )
    job = crawl([demo_site.url + f"page/{n}" for n in (1, 2, 3)])
    pages = client.get(f"/api/jobs/{job['id']}/pages").get_json()
    ran_by = {page["task_id"]: page["worker"] for page in pages}
    assert len(ran_by) == 3 and all(ran_by.values()), pages

    def recorded() -> dict | None:
        response = flower.get("/api/tasks")
        assert response.status_code == 200, response.text
        tasks = response.json()
        seen = {
            task_id: tasks[task_id]
            for task_id in ran_by
            if task_id in tasks and tasks[task_id].get("state") == "SUCCESS"
        }
        return seen if len(seen) == len(ran_by) else None

    tasks = wait_for(recorded, 30, "Flower did not record the crawl's tasks", interval=0.5)
    for task_id, worker in ran_by.items():
        assert tasks[task_id]["worker"] == worker
        assert tasks[task_id]["worker"] in wanted
        assert tasks[task_id]["name"] == crawl_pages.name


@pytest.fixture(scope="module")
def beat(services, workers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`wordcrawl beat`'s command, ticking every second at the session's workers; yields
    its log's path."""
    folder = tmp_path_factory.mktemp("beat")
    log_path = folder / "beat.log"
    env = {**os.environ, **services.env, "WORDCRAWL_SCHEDULE_TICK_SECONDS": "1"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            beat_command(),
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield log_path
    finally:
        stop_process(process)


def test_flower_shows_the_crawl_not_the_upkeep(flower, beat, crawl, demo_site, workers, sql):
    # Beat ticks every second and the workers run their upkeep every 2 s: neither is the
    # students' work, and neither may push the crawl's tasks off Flower's list.
    def count(text: str) -> int:
        logs = [workers.log_path(name).read_text(errors="replace") for name in ("w1", "w2")]
        return sum(log.count(text) for log in logs)

    wait_for(lambda: count("start_due_runs[") > 0, 30, f"no tick reached the workers ({beat})")
    ticks, upkeeps = count("start_due_runs["), count("upkeep of period")
    job = crawl([demo_site.url + f"page/{n}" for n in (7, 8, 9)])
    wait_for(
        lambda: count("start_due_runs[") >= ticks + 3 and count("upkeep of period") >= upkeeps + 2,
        30,
        "the ticks or the upkeep stopped",
    )
    crawled = {
        row.task_id for row in sql("SELECT task_id FROM pages WHERE job_id = :j", j=job["id"])
    }

    def listed() -> dict | None:
        tasks = flower.get("/api/tasks").json()
        return tasks if crawled <= set(tasks) else None

    tasks = wait_for(listed, 30, "Flower did not list the crawl's tasks", interval=0.5)
    # Every task Flower ever saw here is a crawl task, its page's URL shown beside it.
    assert {task["name"] for task in tasks.values()} == {crawl_pages.name}
    assert all(demo_site.url in tasks[task_id]["args"] for task_id in crawled)
    # Nor do the ticks leave rows in celery_taskmeta (notebook 3 reads it).
    kept = sql("SELECT count(*) FROM celery_taskmeta WHERE name = 'job_tasks.tasks.start_due_runs'")
    assert kept[0][0] == 0


def test_flowers_task_list_shows_the_crawl_in_a_browser(flower, beat, crawl, demo_site, sql):
    """What a student sees in Flower's *Tasks* after a crawl (the README's guided run, step
    5): one crawl_pages task per page, the page's URL beside it, and no housekeeping."""
    sync_playwright = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (make install adds it)"
    ).sync_playwright
    if CHROMIUM is None:
        pytest.skip(MISSING)
    urls = [demo_site.url + f"page/{n}" for n in (21, 22, 23)]
    job = crawl(urls)
    task_ids = {
        row.task_id for row in sql("SELECT task_id FROM pages WHERE job_id = :j", j=job["id"])
    }
    wait_for(
        lambda: task_ids <= set(flower.get("/api/tasks").json()), 30, "Flower missed the crawl"
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            http_credentials={"username": AUTH[0], "password": AUTH[1]},
            viewport={"width": 1600, "height": 900},
        )
        page = context.new_page()
        page.goto(flower.url + "/tasks")

        def rows() -> list[str]:
            return page.eval_on_selector_all(
                "#tasks-table tbody tr", "rows => rows.map(row => row.innerText)"
            )

        wait_for(
            lambda: all(any(url in row for row in rows()) for url in urls),
            30,
            "Flower's task list did not show the crawl's pages",
            interval=0.5,
        )
        page.screenshot(path=str(screenshot_path("flower-tasks")), full_page=True)
        shown = rows()
        browser.close()

    for url in urls:  # each page is a task of its own, by name, with its state
        (row,) = [row for row in shown if url in row]
        assert crawl_pages.name in row and "SUCCESS" in row, row
    assert not [row for row in shown if "start_due_runs" in row]  # beat ticked meanwhile


def test_flower_refuses_to_start_without_a_password(services, tmp_path):
    db_path = tmp_path / "flower.db"
    result = subprocess.run(
        flower_command(free_port(), db_path),
        env=flower_env(services.env, basic_auth=None),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        start_new_session=True,
    )

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "FLOWER_BASIC_AUTH" in output and "password" in output, output
    assert "Traceback" not in output, output
    assert not db_path.exists()
