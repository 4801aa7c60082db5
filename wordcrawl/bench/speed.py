"""Measure how fast wordcrawl crawls, and how it scales with workers: `wordcrawl bench`.

For each worker count it starts that many real `celery worker` processes (the command of
job_worker, as `wordcrawl up` runs them), submits N pages of the demo site served with a
fixed latency, waits until every page has ended, and reports:

- pages/s from the first page queued to the last page done (PostgreSQL's clock);
- p50/p95 of each page's time from queued to done (its wait in the queue included, so
  with every page queued at once the p95 is close to the run's length);
- the CPU seconds and the peak resident memory of the workers' process trees (psutil;
  prefork's processes share pages, so their summed RSS overstates what they take);
- PostgreSQL's transactions (xact_commit) and rows written per page (pg_stat_database).

It checks that every page was counted and that the words stored add up to the words the
demo site served. The pages are submitted as seed URLs at depth 0, in jobs of at most
WORDCRAWL_MAX_URLS_PER_JOB URLs, through `start_job` as the API does: a depth-limited
crawl of the demo site reaches only a few dozen pages (depth at most 3) and spends its
start waiting for the first pages' links, which measures the tree, not the workers.

It never touches a running stack: it uses the Redis and PostgreSQL servers of
CELERY_BROKER_URL / DATABASE_URL (or starts its own, as `wordcrawl up` does), but works
in an empty Redis database number it claims and in a database it creates and drops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from job_tasks.settings import Settings, format_allowed_hosts, sqlalchemy_url
from job_tasks.storing.db import drop_database

from ..demo_site import DemoSite
from ..local.services import (
    ServerProcess,
    embedded_postgres_for,
    embedded_redis_for,
    free_port,
    port_open,
)

POOLS = ("prefork", "threads", "solo")
CLAIM_KEY = "wordcrawl:bench-claim"
PER_HOST_CONCURRENCY = 1000  # the demo site is ours: let the workers' pools set the pace
START_TIMEOUT = 60.0
SAMPLE_SECONDS = 0.25  # how often the workers' CPU and memory are read
TABLES = "word_counts, pages, job_urls, jobs, celery_taskmeta, celery_tasksetmeta"


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


@dataclass(frozen=True)
class BenchRun:
    """The figures of one crawl with one number of workers."""

    workers: int
    pool: str
    concurrency: int  # processes or threads per worker
    max_pages_per_task: int  # the most pages sent in one task message
    pages: int
    seconds: float
    pages_per_second: float
    p50_ms: float
    p95_ms: float
    cpu_seconds: float
    cpu_ms_per_page: float
    peak_rss_mb: float
    start_rss_mb: float  # the workers' memory when the crawl began, and when it ended:
    end_rss_mb: float  # it should stay flat however many pages they count
    rss_mb_over_time: list[tuple[float, float]]  # (seconds since the start, MB), each second
    db_commits_per_page: float | None
    db_rows_per_page: float | None  # rows inserted, updated or deleted, per page
    machine_cpu_ms_per_page: float  # every process's: workers, PostgreSQL, Redis, the site
    # Where the rest of the machine's CPU went, per page: PostgreSQL's processes serving
    # the bench's database (and its WAL writer), the Redis server, the demo site. None when
    # a process cannot be read (a server on another machine or of another user).
    postgres_cpu_ms_per_page: float | None
    redis_cpu_ms_per_page: float | None
    site_cpu_ms_per_page: float | None
    done: int  # pages counted
    words_ok: bool  # the words stored add up to the words the demo site served

    @property
    def ok(self) -> bool:
        return self.done == self.pages and self.words_ok

    def line(self) -> str:
        """The run's figures, in the columns of HEADER."""
        commits = "-" if self.db_commits_per_page is None else f"{self.db_commits_per_page:.1f}"
        rows = "-" if self.db_rows_per_page is None else f"{self.db_rows_per_page:.0f}"
        parts = [
            "-" if value is None else f"{value:.1f}"
            for value in (
                self.postgres_cpu_ms_per_page,
                self.redis_cpu_ms_per_page,
                self.site_cpu_ms_per_page,
            )
        ]
        return (
            f"{self.workers:>7} {self.pool:>8} {self.concurrency:>4} {self.pages:>6} "
            f"{self.seconds:>8.2f} {self.pages_per_second:>8.1f} {self.p50_ms:>8.0f} "
            f"{self.p95_ms:>8.0f} {self.cpu_seconds:>7.1f} {self.cpu_ms_per_page:>7.1f} "
            f"{self.peak_rss_mb:>7.0f} {commits:>9} {rows:>6} {self.machine_cpu_ms_per_page:>8.1f} "
            f"{parts[0]:>6} {parts[1]:>7} {parts[2]:>6} {'yes' if self.ok else 'NO':>7}"
        )


HEADER = (
    "workers     pool conc  pages  seconds  pages/s   p50 ms   p95 ms   cpu s "
    "cpu ms/p  rss MB commits/p rows/p all ms/p  pg ms redis ms site ms counted"
)


@dataclass(frozen=True)
class BenchPlan:
    """What to measure."""

    pages: int
    latency_ms: int
    worker_counts: Sequence[int]
    pools: Sequence[str]
    concurrency: int  # 0: Celery's default, one per CPU
    max_pages_per_task: int = Settings.max_pages_per_task  # WORDCRAWL_MAX_PAGES_PER_TASK
    per_host_concurrency: int = PER_HOST_CONCURRENCY
    timeout: float = 600.0  # seconds per run
    keep: bool = False  # keep the database (and the logs) afterwards


def run_bench(
    settings: Settings, plan: BenchPlan, echo: Callable[[str], None] = print
) -> list[BenchRun]:
    """Run every (pool, worker count) of the plan; return their figures in that order."""
    with contextlib.ExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="wordcrawl-bench-"))
        broker_url, database_url = _servers(settings, work_dir, stack)
        broker_url = _claim_redis_database(broker_url)
        stack.callback(_release_redis_database, broker_url)
        database_url = make_url(database_url).set(
            database=f"wordcrawl_bench_{uuid.uuid4().hex[:10]}"
        )
        database_url = database_url.render_as_string(hide_password=False)
        _point_this_process_at(broker_url, database_url, plan.max_pages_per_task)
        _create_database(database_url)
        if plan.keep:
            echo(f"keeping the database: {database_url}")
        else:
            stack.callback(drop_database, database_url)

        site = DemoSite(pages=plan.pages + 1, latency_ms=plan.latency_ms)
        site_url, site_pid = stack.enter_context(_demo_site(site, work_dir / "demo-site.log"))
        host, port = urlsplit(site_url).hostname, urlsplit(site_url).port
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": database_url,
            "WORDCRAWL_ALLOWED_HOSTS": format_allowed_hosts(frozenset({(host, port)})),
            "WORDCRAWL_PER_HOST_CONCURRENCY": str(plan.per_host_concurrency),
            "WORDCRAWL_MAX_PAGES_PER_TASK": str(plan.max_pages_per_task),
        }
        env.pop("CELERY_RESULT_BACKEND", None)  # derived from the bench's DATABASE_URL
        urls = [f"{site_url}page/{n}" for n in range(1, plan.pages + 1)]
        served_words = sum(len(site.visible_words(n)) for n in range(1, plan.pages + 1))
        echo(
            f"{plan.pages} pages of {site_url} with {plan.latency_ms} ms latency, "
            f"up to {plan.max_pages_per_task} per task; "
            f"broker {broker_url}; database {make_url(database_url).database}; "
            f"logs in {work_dir}"
        )
        echo(HEADER)
        runs = []
        failed = False
        for pool in plan.pools:
            for count in plan.worker_counts:
                run_env = {
                    **env,
                    "WORDCRAWL_WORKER_POOL": pool,
                    "WORDCRAWL_WORKER_CONCURRENCY": str(plan.concurrency),
                }
                try:
                    run = _one_run(
                        run_env,
                        count,
                        urls,
                        served_words,
                        plan,
                        work_dir / f"{pool}-{count}",
                        _Servers(broker_url, database_url, site_pid),
                    )
                except (BenchError, SQLAlchemyError, redis.RedisError) as err:
                    # e.g. PostgreSQL's max_connections, with many workers of many threads
                    echo(f"{count:>7} {pool:>8}  failed: {str(err).splitlines()[0]}")
                    failed = True
                    continue
                echo(run.line())
                runs.append(run)
                failed = failed or not run.ok
        if not failed and not plan.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    if failed and len(runs) < len(plan.pools) * len(plan.worker_counts):
        echo(f"some runs failed; the workers' logs are in {work_dir}")
    return runs


def _one_run(
    env: dict[str, str],
    count: int,
    urls: list[str],
    served_words: int,
    plan: BenchPlan,
    log_dir: Path,
    servers: _Servers,
) -> BenchRun:
    """Start `count` workers, crawl the URLs, stop the workers; return the figures."""
    from job_tasks.settings import get_settings
    from job_tasks.storing.db import get_sessionmaker
    from job_tasks.storing.submission import JobRequest, start_job
    from job_worker import worker_concurrency

    settings = Settings.from_env(env)
    _empty(settings)
    engine = _engine(settings.database_url)
    concurrency = worker_concurrency(settings) or os.cpu_count() or 1
    if settings.worker_pool == "solo":
        concurrency = 1
    log_dir.mkdir(parents=True, exist_ok=True)
    with _workers(env, count, log_dir) as processes:
        before = _database_activity(settings.database_url)
        sampler = _Sampler(processes, servers.finders())
        machine_before = _machine_busy_seconds()
        sessions = get_sessionmaker(settings.database_url)
        per_job = get_settings().max_urls_per_job
        for start in range(0, len(urls), per_job):
            chunk = urls[start : start + per_job]
            start_job(sessions, JobRequest(chunk, 0, len(chunk)), settings.job_tasks_in_broker)
        deadline = time.monotonic() + plan.timeout
        while _open_jobs(engine):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        sampler.stop()
        machine_seconds = _machine_busy_seconds() - machine_before
    servers.close()
    engine.dispose()
    _dispose_shared_engine(settings.database_url)
    after = _database_activity(settings.database_url, settle=True)
    figures = _page_figures(settings.database_url)
    pages = len(urls)
    seconds = figures["seconds"]
    commits = rows = None
    if before is not None and after is not None:
        commits = (after[0] - before[0]) / pages
        rows = (after[1] - before[1]) / pages
    return BenchRun(
        workers=count,
        pool=settings.worker_pool,
        concurrency=concurrency,
        max_pages_per_task=settings.group_size,
        pages=pages,
        seconds=round(seconds, 3),
        pages_per_second=round(figures["done"] / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(figures["p50_ms"], 1),
        p95_ms=round(figures["p95_ms"], 1),
        cpu_seconds=round(sampler.cpu_seconds, 2),
        cpu_ms_per_page=round(sampler.cpu_seconds * 1000 / pages, 2),
        peak_rss_mb=round(sampler.peak_rss / 2**20, 1),
        start_rss_mb=round(sampler.first_rss / 2**20, 1),
        end_rss_mb=round(sampler.last_rss / 2**20, 1),
        rss_mb_over_time=[(round(t, 1), round(rss / 2**20, 1)) for t, rss in sampler.rss_over_time],
        db_commits_per_page=None if commits is None else round(commits, 2),
        db_rows_per_page=None if rows is None else round(rows, 1),
        machine_cpu_ms_per_page=round(machine_seconds * 1000 / pages, 2),
        postgres_cpu_ms_per_page=sampler.ms_per_page("postgres", pages),
        redis_cpu_ms_per_page=sampler.ms_per_page("redis", pages),
        site_cpu_ms_per_page=sampler.ms_per_page("site", pages),
        done=figures["done"],
        words_ok=figures["words"] == served_words,
    )


# --- the servers and the isolated Redis database and PostgreSQL database -------------


def _servers(settings: Settings, work_dir: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    """Return the Redis and PostgreSQL URLs to use: the configured ones, or our own."""
    urls = []
    for found, configured in (
        (embedded_redis_for(settings.broker_url, work_dir / "redis"), settings.broker_url),
        (
            embedded_postgres_for(settings.database_url, work_dir / "postgres"),
            settings.database_url,
        ),
    ):
        if found is None:
            urls.append(configured)
            continue
        server: ServerProcess = found
        server.start()
        stack.callback(server.stop)
        urls.append(server.url)
    return urls[0], urls[1]


def _claim_redis_database(url: str) -> str:
    """Return the URL of an empty database number of this Redis server, marked as ours."""
    parts = urlsplit(url)
    for number in range(15, 0, -1):
        candidate = urlunsplit(parts._replace(path=f"/{number}"))
        client = redis.Redis.from_url(candidate)
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, os.getpid(), nx=True):
                if client.dbsize() == 1:  # nobody claimed it at the same moment
                    return candidate
                client.delete(CLAIM_KEY)
        finally:
            client.close()
    raise BenchError(f"no empty Redis database number (1-15) at {parts.hostname}")


def _release_redis_database(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _point_this_process_at(broker_url: str, database_url: str, max_pages_per_task: int) -> None:
    """Make this process's settings and Celery app (which sends the tasks) use the bench's
    broker and database, and send its pages per task as the workers do. Celery reads
    CELERY_BROKER_URL before its own configuration."""
    import job_tasks
    from job_tasks.celeryconfig import celery_config
    from job_tasks.settings import get_settings

    os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ["DATABASE_URL"] = database_url
    os.environ["WORDCRAWL_MAX_PAGES_PER_TASK"] = str(max_pages_per_task)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    get_settings.cache_clear()
    job_tasks.app.conf.update(celery_config(get_settings()))


def _create_database(database_url: str) -> None:
    import job_tasks
    from job_tasks.storing.db import create_database_if_missing
    from job_tasks.storing.schema import init_db

    create_database_if_missing(database_url)
    init_db(database_url, job_tasks.app)
    _dispose_shared_engine(database_url)


def _dispose_shared_engine(database_url: str) -> None:
    """Close this process's pooled connections (job_tasks.storing.db's and Celery's backend)."""
    import job_tasks
    from job_tasks.storing import db as job_db

    engine = job_db._engines.get(database_url)
    if engine is not None:
        engine.dispose()
    with contextlib.suppress(Exception):  # the backend may not have connected at all
        job_tasks.app.backend.session_manager.prepared = False
        for backend_engine in job_tasks.app.backend.session_manager._engines.values():
            backend_engine.dispose()


def _engine(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url), pool_size=1)


def _empty(settings: Settings) -> None:
    """Start each run from empty tables and an empty Redis database (robots cache, limits)."""
    engine = _engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    client = redis.Redis.from_url(settings.broker_url)
    try:
        client.flushdb()
        client.set(CLAIM_KEY, os.getpid())
    finally:
        client.close()


def _open_jobs(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
        ).scalar_one()


def _page_figures(database_url: str) -> dict[str, float]:
    """Read the run's timings and totals from the pages and word_counts tables."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    """
                    SELECT count(*) FILTER (WHERE status = 'done') AS done,
                           extract(epoch FROM max(finished_at) - min(queued_at)) AS seconds,
                           percentile_cont(0.5) WITHIN GROUP (
                               ORDER BY extract(epoch FROM finished_at - queued_at)) AS p50,
                           percentile_cont(0.95) WITHIN GROUP (
                               ORDER BY extract(epoch FROM finished_at - queued_at)) AS p95,
                           (SELECT coalesce(sum(count), 0) FROM word_counts) AS words
                    FROM pages
                    """
                )
            ).one()
    finally:
        engine.dispose()
    return {
        "done": row.done,
        "seconds": float(row.seconds or 0),
        "p50_ms": float(row.p50 or 0) * 1000,
        "p95_ms": float(row.p95 or 0) * 1000,
        "words": int(row.words),
    }


def _database_activity(database_url: str, settle: bool = False) -> tuple[int, int] | None:
    """Return the database's (transactions committed, rows written) so far, or None.

    PostgreSQL counts a session's activity when it ends (or when it idles, at most once a
    second), so this waits until no session is left in the database; `settle` also waits
    until two readings agree.
    """
    url = make_url(sqlalchemy_url(database_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    query = text(
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, "
        "(SELECT count(*) FROM pg_stat_activity WHERE datname = :db) "
        "FROM pg_stat_database WHERE datname = :db"
    )
    try:
        deadline = time.monotonic() + 10
        last = None
        while time.monotonic() < deadline:
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                commits, rows, sessions = conn.execute(query, {"db": url.database}).one()
            reading = (int(commits), int(rows))
            if sessions == 0 and (not settle or reading == last):
                return reading
            last = reading
            time.sleep(0.2)
        return None
    finally:
        admin.dispose()


# --- the demo site and the workers ----------------------------------------------------


@contextlib.contextmanager
def _demo_site(site: DemoSite, log_path: Path) -> Iterator[tuple[str, int]]:
    """Serve the demo site from a process of its own; yield its URL and process id."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "wordcrawl",
        "demo-site",
        "--port",
        str(port),
        "--pages",
        str(site.pages),
        "--latency-ms",
        str(site.latency_ms),
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        # It renders its pages before it opens its port: allow time per page.
        startup = 15 + site.pages / 500
        wait_until(lambda: port_open(port), startup, "the demo site did not start", process)
        yield f"http://127.0.0.1:{port}/", process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _workers(env: dict[str, str], count: int, log_dir: Path) -> Iterator[list[psutil.Process]]:
    """Start `count` workers and wait until each answers a ping; stop them all after."""
    import job_tasks
    from job_worker import worker_command

    settings = Settings.from_env(env)
    names = [f"bench{n}" for n in range(1, count + 1)]
    processes: list[subprocess.Popen] = []
    try:
        for name in names:
            with open(log_dir / f"{name}.log", "ab") as log:
                processes.append(
                    subprocess.Popen(
                        worker_command(name, settings, loglevel="WARNING"),
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        wanted = {f"{name}@{socket.gethostname()}" for name in names}

        def online() -> bool:
            for process in processes:
                if process.poll() is not None:
                    raise BenchError(f"a worker exited while starting; see {log_dir}")
            replies = job_tasks.app.control.ping(timeout=0.5) or []
            return wanted <= {node for reply in replies for node in reply}

        wait_until(online, START_TIMEOUT, f"the workers did not answer; see {log_dir}")
        yield [psutil.Process(process.pid) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its pool processes too
            process.wait()


class _Servers:
    """Find the processes of the servers a crawl uses, to read their CPU time."""

    def __init__(self, broker_url: str, database_url: str, site_pid: int) -> None:
        self.site_pid = site_pid
        self.redis_port = urlsplit(broker_url).port or 6379
        self.database = make_url(sqlalchemy_url(database_url)).database
        url = make_url(sqlalchemy_url(database_url)).set(database="postgres")
        self._admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)

    def finders(self) -> dict[str, Callable[[], list[psutil.Process]]]:
        """Functions returning each server's processes now."""
        redis_server = _listening(self.redis_port)
        return {
            "postgres": self._postgres,
            "redis": lambda: redis_server,
            "site": lambda: [psutil.Process(self.site_pid)],
        }

    def close(self) -> None:
        self._admin.dispose()

    def _postgres(self) -> list[psutil.Process]:
        # The backends serving the bench's database (each connection is a process) and
        # the WAL writer, which flushes their commits; not this sampler's own backend.
        query = text(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = :db OR backend_type = 'walwriter')"
        )
        with self._admin.connect() as conn:
            pids = conn.execute(query, {"db": self.database}).scalars().all()
        return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]


def _listening(port: int) -> list[psutil.Process]:
    """The process listening on a local TCP port, if this user may see it."""
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return [psutil.Process(conn.pid)]
    return []


class _Sampler:
    """Read the CPU time and memory of the workers' process trees, and the CPU time of
    other processes (the servers), in a thread."""

    def __init__(
        self,
        roots: list[psutil.Process],
        others: dict[str, Callable[[], list[psutil.Process]]] | None = None,
    ) -> None:
        self.roots = roots
        self.others = others or {}
        self.first_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self.seen: dict[str, set[int]] = {name: set() for name in self.others}
        self.unreadable: set[str] = set()
        self.worker_pids: set[int] = set()
        self.peak_rss = self.first_rss = self.last_rss = 0
        self.rss_over_time: list[tuple[float, int]] = []
        self._began = time.monotonic()
        self._started = False
        self._stopped = threading.Event()
        self._sample()
        self._started = True  # the starting point: CPU spent before the crawl is not counted
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    @property
    def cpu_seconds(self) -> float:
        return self._seconds(self.worker_pids)

    def ms_per_page(self, name: str, pages: int) -> float | None:
        """CPU ms per page of one group of `others`; None if it could not be read."""
        if name in self.unreadable or not self.seen.get(name):
            return None
        return round(self._seconds(self.seen[name]) * 1000 / pages, 2)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._sample()

    def _seconds(self, pids: set[int]) -> float:
        return sum(self.last_cpu[pid] - self.first_cpu.get(pid, 0.0) for pid in pids)

    def _run(self) -> None:
        while not self._stopped.wait(SAMPLE_SECONDS):
            self._sample()

    def _read(self, process: psutil.Process) -> tuple[float, int] | None:
        try:
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info().rss
        except psutil.NoSuchProcess:
            return None  # ended: its last reading stands
        cpu = times.user + times.system
        # A process that appears later (a new pool process, a new connection's backend)
        # counts from zero.
        self.first_cpu.setdefault(process.pid, 0.0 if self._started else cpu)
        self.last_cpu[process.pid] = cpu
        return cpu, memory

    def _sample(self) -> None:
        rss = 0
        for root in self.roots:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in tree:
                reading = self._read(process)
                if reading is not None:
                    self.worker_pids.add(process.pid)
                    rss += reading[1]
        self.peak_rss = max(self.peak_rss, rss)
        self.first_rss = self.first_rss or rss
        if rss:
            self.last_rss = rss
            elapsed = time.monotonic() - self._began
            if not self.rss_over_time or elapsed - self.rss_over_time[-1][0] >= 1:
                self.rss_over_time.append((elapsed, rss))
        for name, find in self.others.items():
            try:
                for process in find():
                    if self._read(process) is not None:
                        self.seen[name].add(process.pid)
            except (psutil.AccessDenied, SQLAlchemyError):
                self.unreadable.add(name)
            except psutil.NoSuchProcess:
                pass


def _machine_busy_seconds() -> float:
    """CPU seconds this machine has spent on anything but idling, all CPUs together."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    message: str,
    process: subprocess.Popen | None = None,
) -> None:
    """Poll `check` until it is true; BenchError(message) after `timeout` seconds, or as
    soon as `process` has exited."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise BenchError(f"{message} (exit code {process.returncode})")
        if time.monotonic() > deadline:
            raise BenchError(message)
        time.sleep(0.1)


# --- the report -----------------------------------------------------------------------


def write_json(runs: Sequence[BenchRun], path: Path) -> None:
    """Write the runs as a JSON list of objects, one per run."""
    path.write_text(json.dumps([asdict(run) for run in runs], indent=2) + "\n")


def write_plot(runs: Sequence[BenchRun], path: Path, pages: int, latency_ms: int) -> None:
    """Plot pages/s against workers, one line per pool, with perfect scaling dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    series: dict[tuple[str, int], list[BenchRun]] = {}
    for run in runs:
        series.setdefault((run.pool, run.concurrency), []).append(run)
    for (pool, concurrency), points in series.items():
        points.sort(key=lambda run: run.workers)
        xs = [run.workers for run in points]
        (line,) = axes.plot(
            xs,
            [run.pages_per_second for run in points],
            marker="o",
            label=f"{pool}, {concurrency} per worker" + _grouping(points[0].max_pages_per_task),
        )
        for run in points:
            axes.annotate(
                f"{run.pages_per_second:.0f}",
                (run.workers, run.pages_per_second),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
        first = points[0]
        if len(points) > 1:  # what perfect scaling from the first point would give
            per_worker = first.pages_per_second / first.workers
            axes.plot(
                xs,
                [per_worker * x for x in xs],
                linestyle=":",
                color=line.get_color(),
                alpha=0.6,
            )
    axes.set_xlabel("workers")
    axes.set_ylabel("pages per second")
    axes.set_xticks(sorted({run.workers for run in runs}))
    axes.set_ylim(bottom=0)
    axes.set_title(
        f"wordcrawl bench: {pages} pages, {latency_ms} ms latency, {os.cpu_count()} CPUs\n"
        "(dotted: perfect scaling)",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _grouping(max_pages_per_task: int) -> str:
    return f", up to {max_pages_per_task} pages per task" if max_pages_per_task > 1 else ""
