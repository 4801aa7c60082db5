"""What the whole-stack benchmarks share: an isolated place to run, the stack, the checks.

- `isolated_servers` claims an empty Redis database number and creates a database of its
  own (dropped afterwards), on the servers of CELERY_BROKER_URL / DATABASE_URL, or on
  servers it starts, as `wordcrawl up` does (the same code as `wordcrawl bench`'s sweep).
- `running_stack` starts the default stack as `wordcrawl up` does (wordcrawl/local/
  stack.py: manager, Flower, beat, the workers) in them, with no wordcrawl variable set
  but the ones a benchmark names, and stops all of it afterwards.
- `counted_pages` checks, page by page, that the words stored are the words the demo site
  served, and gives the crawl's pages per second.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from job_tasks.settings import Settings, format_allowed_hosts
from job_tasks.storing.db import create_database_if_missing, drop_database, get_engine

from ..demo_site import DemoSite
from ..local.services import free_port
from ..local.stack import Stack
from .speed import _claim_redis_database, _release_redis_database, _servers

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Place:
    """Where a benchmark runs: its Redis database, its database and its scratch folder."""

    broker_url: str
    database_url: str
    work_dir: Path

    def describe(self) -> str:
        database = make_url(self.database_url).database
        redis_db = urlsplit(self.broker_url).path.lstrip("/")
        return f"Redis db {redis_db}; database {database}; work folder {self.work_dir}"


@contextlib.contextmanager
def isolated_servers(settings: Settings, keep: bool = False) -> Iterator[Place]:
    """Yield an empty Redis database number and a new database; clean both up after."""
    with contextlib.ExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="wordcrawl-bench-"))
        broker_url, database_url = _servers(settings, work_dir, stack)
        broker_url = _claim_redis_database(broker_url)
        stack.callback(_release_redis_database, broker_url)
        url = make_url(database_url).set(database=f"wordcrawl_bench_{uuid.uuid4().hex[:10]}")
        database_url = url.render_as_string(hide_password=False)
        create_database_if_missing(database_url)
        if not keep:
            stack.callback(drop_database, database_url)
        yield Place(broker_url, database_url, work_dir)
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)


def bench_environ(place: Place, sites: list[str], extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with no wordcrawl variable but the benchmark's own:
    the connection URLs, the demo sites let past the address guard, and `extra`."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WORDCRAWL_", "CELERY_", "FLOWER_"))
    }
    hosts = {(urlsplit(url).hostname, urlsplit(url).port) for url in sites}
    environ.update(
        {
            "CELERY_BROKER_URL": place.broker_url,
            "DATABASE_URL": place.database_url,
            "WORDCRAWL_ALLOWED_HOSTS": format_allowed_hosts(frozenset(hosts)),
            "FLOWER_PORT": str(free_port()),
            **extra,
        }
    )
    return environ


@contextlib.contextmanager
def running_stack(place: Place, environ: dict[str, str], workers: int = 2) -> Iterator[Stack]:
    """Start the stack `wordcrawl up` starts (quietly, its state in the work folder) with
    this environment, and stop all of it afterwards. Its manager is at stack's api_url."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)  # the stack's pieces inherit this process's environment
    settings = replace(Settings.from_env(environ), state_dir=str(place.work_dir / "state"))
    stack = Stack(settings, workers=workers, port=free_port())
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its banner shows passwords
            stack.start()
        yield stack
    finally:
        # The measuring is over: tell every piece to stop at once (a warm shutdown takes a
        # worker or the manager about two seconds), then let the stack wait for them.
        for child in stack.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        with contextlib.redirect_stdout(io.StringIO()):
            stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def stack_processes(stack: Stack) -> dict[str, psutil.Process]:
    """The manager, Flower and the workers by name: the roots of the trees to measure."""
    names = {"manager", "flower", *(f"worker {name}" for name in stack.worker_names())}
    return {c.name: psutil.Process(c.process.pid) for c in stack.children if c.name in names}


def tree_rss_mb(root: psutil.Process) -> float:
    """The resident memory of a process and its children, summed, in MB."""
    total = 0
    with contextlib.suppress(psutil.NoSuchProcess):
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
    return round(total / 2**20, 1)


# How many of the bench's jobs are still open, and how many of their pages are counted.
OPEN_JOBS = (
    "SELECT count(*) FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
    " AND status IN ('queued', 'running')"
)
DONE_PAGES = (
    "SELECT count(*) FROM pages WHERE job_id = ANY(CAST(:ids AS uuid[])) AND status = 'done'"
)


def open_jobs(database_url: str, job_ids: list[str]) -> int:
    """How many of these jobs are still queued or running."""
    return _count(database_url, OPEN_JOBS, job_ids)


def pages_done(database_url: str, job_ids: list[str]) -> int:
    """How many pages of these jobs are counted."""
    return _count(database_url, DONE_PAGES, job_ids)


def _count(database_url: str, query: str, job_ids: list[str]) -> int:
    with get_engine(database_url).connect() as conn:
        return conn.execute(text(query), {"ids": job_ids}).scalar_one()


@dataclass(frozen=True)
class Counted:
    """What a crawl stored, checked against what the demo site served."""

    pages: int  # pages of the jobs that ended, whatever their end
    done: int  # pages counted
    words_ok: int  # pages counted whose words are exactly the words the site served
    seconds: float  # first page queued to last page done
    pages_per_second: float

    @property
    def ok(self) -> bool:
        """Every page counted, with the right words."""
        return self.pages > 0 and self.done == self.pages == self.words_ok


def counted_pages(database_url: str, job_ids: list[str], site: DemoSite) -> Counted:
    """Read the jobs' pages and check each one's words against the site's.

    Pages the crawl was right not to count (a robots.txt refusal, a link to another host)
    are left out: the question is whether each page the site serves was counted right.
    """
    engine = get_engine(database_url)
    query = text(
        """
        SELECT p.url, p.status, p.queued_at, p.finished_at,
               (SELECT coalesce(sum(w.count), 0) FROM word_counts w WHERE w.page_id = p.id)
        FROM pages p WHERE p.job_id = ANY(CAST(:ids AS uuid[]))
        """
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"ids": job_ids}).all()
    served = [row for row in rows if site.page_number(urlsplit(row[0]).path) is not None]
    done = [row for row in served if row[1] == "done"]
    right = sum(
        1
        for url, _, _, _, words in done
        if words == len(site.visible_words(site.page_number(urlsplit(url).path)))
    )
    seconds = 0.0
    if done:
        seconds = (max(row[3] for row in done) - min(row[2] for row in served)).total_seconds()
    rate = round(len(done) / seconds, 1) if seconds > 0 else 0.0
    return Counted(len(served), len(done), right, round(seconds, 2), rate)
