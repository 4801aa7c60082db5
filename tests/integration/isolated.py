"""A wordcrawl stack of its own for one fault test: broker, database, manager and workers.

The fault tests kill workers and stop servers, so they never share the session's workers:
each runs against a Redis database (or server) and a PostgreSQL database (or server) of
its own, with the manager (`python -m wordcrawl serve`, gunicorn) and the workers as
real processes started with that stack's environment. Helpers only; the tests are in
test_faults.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests
from processes import WorkerPool, wait_for
from sqlalchemy import text
from sqlalchemy.engine import make_url

from job_tasks.celery_app import create_celery
from job_tasks.settings import Settings
from job_tasks.storing import db as job_db
from job_tasks.storing.schema import init_db
from wordcrawl.local.services import free_port

ENDED = ("done", "failed", "cancelled")


class Workers(WorkerPool):
    """A WorkerPool whose pings go to its own broker (not the session's).

    Celery reads CELERY_BROKER_URL from os.environ before its own broker_url, and the test
    process's variable names the session's broker; broker_read_url and broker_write_url
    come before that variable, so they point this pool's app at its own broker.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(env, log_dir)
        self.celery = create_celery(self.settings)
        self.celery.conf.broker_read_url = self.settings.broker_url
        self.celery.conf.broker_write_url = self.settings.broker_url

    def online(self) -> set[str]:
        try:
            replies = self.celery.control.ping(timeout=0.5) or []
        except Exception:  # the broker is away (a test stopped it): nobody answers
            return set()
        return {node for reply in replies for node in reply}

    def close(self) -> None:
        self.stop_all()
        self.celery.close()


class Manager:
    """The manager served by gunicorn (`python -m wordcrawl serve`) on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "wordcrawl",
                    "serve",
                    "--port",
                    str(self.port),
                    "--processes",
                    "1",
                ],
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(self._answers, 30, f"the manager did not answer; log in {log_path}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the manager exited with code {self.process.returncode}")
        try:
            return self.get("/api/jobs?limit=1").status_code == 200
        except requests.ConnectionError:
            return False

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=10)

    def post(self, path: str, body: object) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=10)

    def submit(self, urls: list[str], **fields: object) -> str:
        """Submit a job; return its id."""
        response = self.post("/api/jobs", {"urls": urls, **fields})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        response = self.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_job(self, job_id: str, timeout: float) -> dict:
        """Poll the API until the job has ended; return it as the API shows it."""

        def ended() -> dict | None:
            job = self.job(job_id)
            return job if job["status"] in ENDED else None

        return wait_for(ended, timeout, f"job {job_id} did not end", interval=0.25)

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Stack:
    """The processes of one test's wordcrawl, all with the same environment."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.settings = Settings.from_env(env)
        self.log_dir = log_dir
        self.workers = Workers(env, log_dir)
        self.manager: Manager | None = None

    @property
    def api(self) -> Manager:
        assert self.manager is not None, "start the manager first"
        return self.manager

    def start_manager(self) -> Manager:
        self.manager = Manager(self.env, self.log_dir / "manager.log")
        return self.manager

    def sql(self, query: str, **params: object) -> list:
        """Run a query on this stack's database and return its rows."""
        with job_db.get_engine(self.settings.database_url).connect() as conn:
            return list(conn.execute(text(query), params))

    def page_counts(self, job_id: str) -> dict[str, int]:
        """Return how many pages of a job are in each status, straight from PostgreSQL."""
        rows = self.sql(
            "SELECT status, count(*) FROM pages WHERE job_id = :job GROUP BY status", job=job_id
        )
        return {status: count for status, count in rows}

    def close(self) -> None:
        self.workers.close()
        if self.manager is not None:
            self.manager.stop()
        engine = job_db._engines.pop(self.settings.database_url, None)
        if engine is not None:
            engine.dispose()


def new_database_url(server_url: str) -> str:
    """Return the URL of a new, uniquely named database on a PostgreSQL server."""
    name = f"wordcrawl_faults_{uuid.uuid4().hex[:12]}"
    return make_url(server_url).set(database=name).render_as_string(False)


def create_database(database_url: str, settings: Settings) -> None:
    """Create a database and wordcrawl's (and Celery's) tables in it."""
    job_db.create_database_if_missing(database_url)
    celery = create_celery(settings)
    try:
        init_db(database_url, celery)
    finally:
        celery.close()


@contextlib.contextmanager
def running_stack(env: dict[str, str], log_dir: Path, drop: bool = True) -> Iterator[Stack]:
    """Create the stack's database, yield the stack, and stop everything after; then drop
    the database, unless its server is the test's own (`drop=False`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(env)
    create_database(settings.database_url, settings)
    stack = Stack(env, log_dir)
    try:
        yield stack
    finally:
        try:
            stack.close()
        finally:
            if drop:
                job_db.drop_database(settings.database_url)
