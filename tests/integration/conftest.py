"""Real services for the integration tests: Redis, PostgreSQL, Celery workers, web sites.

Tests use the Redis and PostgreSQL of CELERY_BROKER_URL / DATABASE_URL (default: this
machine's) when they answer, and otherwise start their own from Python packages, as
`wordcrawl up` does. Either way they never touch a stack a person is running: they work
in a database they create and drop, and in an empty Redis database number they claim.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fixture_site import MAX_BYTES, FixtureSite
from hostile_site import HostileSite
from processes import WorkerPool, wait_for
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

import job_tasks
from job_manager import create_app
from job_tasks.celeryconfig import celery_config
from job_tasks.sending import enqueue_pages
from job_tasks.settings import Settings, get_settings
from job_tasks.storing import db as job_db
from job_tasks.storing.schema import init_db
from job_tasks.storing.submission import JobRequest, record_job
from wordcrawl.demo_site import DemoServer, DemoSite
from wordcrawl.local.services import (
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
    postgres_answers,
    redis_answers,
)

CLAIM_KEY = "wordcrawl:test-suite-claim"
PER_HOST_CONCURRENCY = 3  # requests to one host at once, below the workers' 4 slots


@dataclass(frozen=True)
class Services:
    """Where this test session's Redis database and PostgreSQL database are."""

    broker_url: str
    database_url: str
    env: dict[str, str]  # the variables a process needs to use them
    redis_server_url: str  # the Redis server (any database number)
    postgres_server_url: str  # the PostgreSQL server (its maintenance database)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Find or start Redis and PostgreSQL; claim a Redis db and create a test database."""
    started: list = []
    base_redis = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
    if not redis_answers(base_redis):
        # As `wordcrawl up`'s: a password of its own, and bounded memory.
        redis_dir = tmp_path_factory.mktemp("redis")
        server = EmbeddedRedis(redis_dir, free_port(), maxmemory=Settings().redis_maxmemory)
        server.start()
        started.append(server)
        base_redis = server.url
    base_pg = os.environ.get("DATABASE_URL", "postgresql://postgres@localhost:5432/postgres")
    if not postgres_answers(base_pg):
        # As root, its data goes to a folder of its system user's under /tmp (not here,
        # where that user cannot reach): discard() removes it at the end.
        server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), "postgres")
        server.start()
        started.append(server)
        base_pg = server.url

    broker_url = claim_redis_database(base_redis)
    database_name = f"wordcrawl_test_{uuid.uuid4().hex[:12]}"
    database_url = make_url(base_pg).set(database=database_name).render_as_string(False)
    env = {
        "CELERY_BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "WORDCRAWL_SUBMISSIONS_PER_MINUTE": "100000",
        # Fewer requests to one host at once than the workers' 4 slots, to see the limit
        # hold; it also bounds a group of pages (Settings.group_size), so this process
        # (submitting) and the workers (releasing pages) group them alike.
        "WORDCRAWL_PER_HOST_CONCURRENCY": str(PER_HOST_CONCURRENCY),
    }
    _configure_this_process(env)
    job_db.create_database_if_missing(database_url)
    init_db(database_url, job_tasks.app)
    try:
        yield Services(broker_url, database_url, env, base_redis, base_pg)
    finally:
        for engine in job_db._engines.values():
            engine.dispose()
        job_db.drop_database(database_url)
        release_redis_database(broker_url)
        for server in reversed(started):
            server.stop()
            if isinstance(server, EmbeddedPostgres):
                server.discard()


def claim_redis_database(url: str) -> str:
    """Return the URL of an empty Redis database number, marked as this session's."""
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{base}/{number}")
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, os.getpid(), nx=True):
                return f"{base}/{number}"
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database number at {base} for the tests")


def release_redis_database(url: str) -> None:
    """Empty a Redis database this session claimed."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def _configure_this_process(env: dict[str, str]) -> None:
    """Point this process's settings and Celery app at the test services."""
    os.environ.update(env)
    get_settings.cache_clear()
    job_tasks.app.conf.update(celery_config(get_settings()))


@pytest.fixture(scope="session")
def fixture_site() -> Iterator[FixtureSite]:
    """The site with one path per failure kind, on 127.0.0.1."""
    site = FixtureSite().start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def hostile_site() -> Iterator[HostileSite]:
    """The hostile site (cookie floods, dripping answers, huge pages), on 127.0.0.1."""
    site = HostileSite().start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def demo_site() -> Iterator[DemoServer]:
    """The demo site (wordcrawl demo-site), with 60 linked pages."""
    server = DemoServer(DemoSite(pages=60))
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens (allowed, to test connection errors)."""
    return free_port()


@pytest.fixture(scope="session")
def worker_env(
    services: Services,
    fixture_site: FixtureSite,
    demo_site: DemoServer,
    hostile_site: HostileSite,
    closed_port: int,
) -> dict:
    """The environment of the test workers: test services, the sites allowed, and
    short limits so failure cases end quickly."""
    return {
        **services.env,
        "WORDCRAWL_ALLOWED_HOSTS": (
            f"127.0.0.1:{fixture_site.server_port},"
            f"127.0.0.1:{demo_site.server_address[1]},"
            f"127.0.0.1:{closed_port}," + ",".join(hostile_site.allowed_hosts)
        ),
        "WORDCRAWL_MAX_RESPONSE_BYTES": str(MAX_BYTES),
        "WORDCRAWL_READ_TIMEOUT": "1",
        "WORDCRAWL_PAGE_TIMEOUT": "5",
        "WORDCRAWL_FETCH_RETRIES": "0",  # retries have their own tests
        "WORDCRAWL_WORKER_CONCURRENCY": "2",  # 4 pages at once in all
        "WORDCRAWL_RECONCILE_SECONDS": "2",  # lost messages are found within seconds
    }


@pytest.fixture(scope="session")
def workers(worker_env: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    """Two real `celery worker` processes, w1 and w2, for the whole session."""
    pool = WorkerPool(worker_env, Path(tmp_path_factory.mktemp("worker-logs")))
    pool.start("w1", "w2")
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def app(services: Services):
    """The manager app, configured for the test services."""
    return create_app({"TESTING": True}, settings=services.settings)


@pytest.fixture(scope="session")
def manager_url(services: Services, workers: WorkerPool) -> Iterator[str]:
    """The manager served over real HTTP (from a thread), with CSRF on as in production."""
    live_app = create_app(settings=services.settings)
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def client(app):
    return app.test_client()


def client_at(app, address: str):
    """A test client of `app` whose requests come from another client address (its own
    rate-limit budget and schedule cap)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture(scope="session")
def web_app(services: Services):
    """The manager with CSRF protection on, as in production (for the web pages' forms)."""
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": True}, settings=services.settings)


@pytest.fixture
def browser(web_app):
    """A test client of web_app that keeps its cookies (the CSRF token, flashed messages)."""
    return web_app.test_client()


@pytest.fixture(scope="session")
def sql(services: Services):
    """Run a SQL query on the test database and return its rows."""
    engine = job_db.get_engine(services.database_url)

    def run(query: str, **params: object) -> list:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params))

    return run


ENDED = ("done", "failed", "cancelled")


def row_counts(sql) -> tuple[int, int, int]:
    """How many jobs, seed URLs and pages the database holds (to see that nothing changed)."""
    row = sql(
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_urls), "
        "(SELECT count(*) FROM pages)"
    )[0]
    return tuple(row)


# The owner's headers of each job and schedule the tests submitted through the API.
OWNER_HEADERS: dict[str, dict[str, str]] = {}


def bearer(token: str) -> dict[str, str]:
    """The headers that show an owner's token."""
    return {"Authorization": f"Bearer {token}"}


def as_owner(item_id: str) -> dict[str, str]:
    """The headers with the token the API gave when this job or schedule was submitted."""
    return OWNER_HEADERS[item_id]


def submit_job(client, urls: list[str], **fields: object) -> str:
    """Submit a job through the API; return its id (as_owner(id) gives its token)."""
    response = client.post("/api/jobs", json={"urls": urls, **fields})
    assert response.status_code == 202, response.get_json()
    answer = response.get_json()
    OWNER_HEADERS[answer["id"]] = bearer(answer["token"])
    return answer["id"]


def send_job_with_a_worn_out_page(database_url: str, urls: list[str], in_broker: int = 16) -> str:
    """Send a job whose first page looks started three times without ending, as if its
    worker had died at every start (tasks.REDELIVERIES); return the job's id. With
    `in_broker` 1, its first pages (up to Settings.group_size) travel in one message."""
    request = JobRequest(urls, depth=0, max_pages=len(urls))
    job_id, pages = record_job(job_db.get_sessionmaker(database_url), request, in_broker=in_broker)
    with job_db.get_engine(database_url).begin() as conn:
        conn.execute(text("UPDATE pages SET attempts = 3 WHERE id = :id"), {"id": pages[0][0]})
    enqueue_pages(pages)
    return str(job_id)


def assert_gave_up_on_the_first_page(sql, job_id: str, urls: list[str]) -> None:
    """The worn-out page failed (attempts: 3 recorded before, and this start), the other
    page was counted."""
    rows = sql(
        "SELECT url, status, error, message, attempts FROM pages WHERE job_id = :j", j=job_id
    )
    pages = {row.url: row for row in rows}
    worn, other = pages[urls[0]], pages[urls[1]]
    assert (worn.status, worn.error, worn.attempts) == ("failed", "timeout", 4)
    assert worn.message == "the page was started 3 times and never finished"
    assert other.status == "done"


def wait_for_job(client, job_id: str, timeout: float = 30.0) -> dict:
    """Poll the API until a job has ended; return the job as the API shows it."""

    def ended() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        return job if job["status"] in ENDED else None

    return wait_for(ended, timeout, f"job {job_id} did not end")


@pytest.fixture
def crawl(client, workers):
    """Submit a job, let the workers crawl it, and return it once it has ended."""

    def run(urls: list[str], timeout: float = 30.0, **fields: object) -> dict:
        return wait_for_job(client, submit_job(client, urls, **fields), timeout)

    return run
