"""Read every setting of wordcrawl from the environment, in one place (12-factor).

The manager, the workers, Flower's configuration and the command line all receive a
`Settings` object from here; no other module reads `os.environ` for wordcrawl's own
variables. Each setting has a safe default and a one-line reason. docs/reference.md lists them all.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from urllib.parse import unquote, urlsplit

DEVELOPMENT_SECRET_KEY = "development-only-secret-key"
# Every secret of .env.example starts so: a deployment still holding one was never set up.
PLACEHOLDER_PREFIX = "change-me"


class SettingsError(ValueError):
    """A variable of the environment has a value wordcrawl cannot use."""


@dataclass(frozen=True)
class Settings:
    """Every setting of wordcrawl, with the default used when its variable is unset."""

    # Where the pieces meet.
    broker_url: str = "redis://localhost:6379/0"
    database_url: str = "postgresql://postgres@localhost:5432/wordcrawl"
    result_backend: str = ""  # derived from database_url when empty
    api_url: str = "http://127.0.0.1:5000"  # where `wordcrawl submit/status/words` send requests

    # The web manager.
    environment: str = "development"  # "production" makes SECRET_KEY mandatory
    secret_key: str = DEVELOPMENT_SECRET_KEY
    submissions_per_minute: int = 30  # per client address, shared across manager processes
    max_request_bytes: int = 256 * 1024  # 100 URLs of 2,048 characters fit with room to spare
    # The instructor's password (user "admin"), who may cancel, retry, pause and delete
    # anyone's jobs and schedules; empty: nobody can log in as the instructor.
    admin_password: str = ""
    # Schedules: the shortest gap between two runs, so one student cannot crawl a site
    # every minute forever, and the active (not paused) schedules one client may keep.
    min_schedule_minutes: int = 10
    max_schedules_per_client: int = 5
    # Every SQL statement of the web side ends within this, so one slow query cannot hold
    # the manager's threads (the workers' statements are not bounded by it).
    statement_timeout_ms: int = 5000
    # /metrics is computed at most once per this many seconds per manager process, so a
    # flood of scrapes costs one scan of the pages table (0: every scrape reads the tables).
    metrics_cache_seconds: int = 5

    # What a job may ask for (docs/reference.md, "Jobs").
    max_urls_per_job: int = 100
    max_pages_per_job: int = 1000
    max_depth: int = 3
    max_url_length: int = 2048

    # Safety of fetching (docs/reference.md, "Guarantees and refusals").
    allowed_hosts: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    allow_private: bool = False
    user_agent: str = "wordcrawl/0.1 (+https://github.com/wordcrawl/wordcrawl; teaching crawler)"
    connect_timeout: float = 5.0  # seconds to open a connection
    read_timeout: float = 10.0  # seconds of silence allowed while reading
    page_timeout: float = 30.0  # seconds for a whole page, so a slow drip cannot hold a worker
    max_response_bytes: int = 5_000_000  # after decompression, so gzip bombs stop here too
    max_redirects: int = 5
    robots_cache_seconds: int = 3600  # how long one robots.txt answer is reused by all workers
    per_host_concurrency: int = 8  # requests to one host at once, across all workers (Scrapy: 8)
    per_host_delay_ms: int = 0  # minimum gap between two requests to one host (Scrapy: 0)
    fetch_retries: int = 3  # more tries for a page that timed out or answered 429/502/503/504
    max_stored_words: int = 10_000  # distinct words stored per page (the most frequent)

    # Workers.
    # threads: one process per worker (a fraction of prefork's memory) whose 16 threads hide
    # the network's wait; a page's deadline is enforced by wordcrawl itself in every pool
    # (tasks.py, _count_side_by_side). prefork (WORDCRAWL_WORKER_POOL=prefork) adds hard
    # time limits and Flower's pool grow/shrink (docs/performance.md, "What each setting
    # trades").
    worker_pool: str = "threads"
    worker_concurrency: int = 0  # 0: the pool's default (see job_worker.worker_concurrency)
    task_time_limit: int = 120  # seconds; a hard stop for a task that hangs beyond page_timeout
    reconcile_seconds: int = 30  # how often lost task messages are looked for (upkeep/reconcile.py)
    # Fair sharing: at most this many task messages of one job are in the broker at once
    # (waiting or running); its other pages wait in PostgreSQL and are sent as its
    # messages end (storing/release.py).
    job_tasks_in_broker: int = 16
    # The most pages one `crawl_pages` message carries. A job whose waiting pages fit in
    # its free messages sends each page alone (one task per page in Flower); a backlog is
    # spread over the free messages, up to this many pages each, crawled side by side:
    # one message, one acknowledgement, one set of states and two transactions for
    # several pages (docs/performance.md, "What each setting trades"). See group_size.
    max_pages_per_task: int = 16
    # Schedules: how often `wordcrawl beat` asks a worker to start the runs that are due.
    # A run starts at most this late; a tick that finds nothing due is one small query.
    schedule_tick_seconds: int = 10
    # Celery's rows in celery_taskmeta are deleted this many days after their task ended
    # (by beat's daily celery.backend_cleanup); 0 keeps them forever. Celery's default is
    # one day, but the notebooks join pages.task_id to celery_taskmeta to show each page's
    # task state and worker: a week keeps a course week's crawls joinable. Jobs themselves
    # stay until `wordcrawl prune` removes them (with their Celery rows).
    result_expires_days: int = 7

    # `wordcrawl up`.
    state_dir: str = ".wordcrawl"
    # The memory its own Redis may use (redis.conf units); past it, keys with a TTL (caches)
    # are evicted first, so a flood of cached answers cannot stop the task queue.
    redis_maxmemory: str = "256mb"

    @property
    def sqlalchemy_url(self) -> str:
        """Return DATABASE_URL with an explicit driver, as SQLAlchemy 2.1 needs."""
        return sqlalchemy_url(self.database_url)

    @property
    def group_size(self) -> int:
        """Return the most pages one task message carries: WORDCRAWL_MAX_PAGES_PER_TASK,
        but never more than one site takes at once (WORDCRAWL_PER_HOST_CONCURRENCY), or a
        group's pages would wait for each other's turn."""
        return max(1, min(self.max_pages_per_task, self.per_host_concurrency))

    @property
    def celery_result_backend(self) -> str:
        """Return the result backend URL: CELERY_RESULT_BACKEND, else derived from DATABASE_URL."""
        return self.result_backend or "db+" + self.sqlalchemy_url

    def allows_host(self, host: str, port: int) -> bool:
        """Say whether host:port is let past the address guard by WORDCRAWL_ALLOWED_HOSTS."""
        return (host.lower().strip("[]"), port) in self.allowed_hosts

    def placeholder_secrets(self) -> list[str]:
        """Name the variables whose secret is still a placeholder of .env.example."""
        return [
            name
            for name, secret in (
                ("SECRET_KEY", self.secret_key),
                ("WORDCRAWL_ADMIN_PASSWORD", self.admin_password),
                ("CELERY_BROKER_URL", _url_password(self.broker_url)),
                ("DATABASE_URL", _url_password(self.database_url)),
                ("CELERY_RESULT_BACKEND", _url_password(self.result_backend)),
            )
            if is_placeholder(secret)
        ]

    def refuse_placeholder_secrets(self) -> None:
        """Raise SettingsError in production while a secret still holds a placeholder."""
        if self.environment == "development":
            return
        found = self.placeholder_secrets()
        if found:
            raise SettingsError(
                f"{', '.join(found)} still hold{'s' if len(found) == 1 else ''} a placeholder "
                f"of .env.example (a value starting {PLACEHOLDER_PREFIX!r}): set a secret of "
                f"your own before running with WORDCRAWL_ENV={self.environment}"
            )

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some settings changed (used by tests and `wordcrawl up`)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from environment variables, checking each one."""
        env = os.environ if environ is None else environ
        read = _Reader(env)
        settings = cls(
            broker_url=read.text("CELERY_BROKER_URL", cls.broker_url),
            database_url=read.text("DATABASE_URL", cls.database_url),
            result_backend=read.text("CELERY_RESULT_BACKEND", ""),
            api_url=read.text("WORDCRAWL_API_URL", cls.api_url).rstrip("/"),
            environment=read.text("WORDCRAWL_ENV", cls.environment),
            secret_key=read.text("SECRET_KEY", cls.secret_key),
            submissions_per_minute=read.integer(
                "WORDCRAWL_SUBMISSIONS_PER_MINUTE", cls.submissions_per_minute, minimum=1
            ),
            max_request_bytes=read.integer(
                "WORDCRAWL_MAX_REQUEST_BYTES", cls.max_request_bytes, minimum=1
            ),
            admin_password=read.text("WORDCRAWL_ADMIN_PASSWORD", cls.admin_password),
            min_schedule_minutes=read.integer(
                "WORDCRAWL_MIN_SCHEDULE_MINUTES", cls.min_schedule_minutes, minimum=1
            ),
            max_schedules_per_client=read.integer(
                "WORDCRAWL_MAX_SCHEDULES_PER_CLIENT", cls.max_schedules_per_client, minimum=1
            ),
            statement_timeout_ms=read.integer(
                "WORDCRAWL_STATEMENT_TIMEOUT_MS", cls.statement_timeout_ms, minimum=1
            ),
            metrics_cache_seconds=read.integer(
                "WORDCRAWL_METRICS_CACHE_SECONDS", cls.metrics_cache_seconds
            ),
            max_urls_per_job=read.integer(
                "WORDCRAWL_MAX_URLS_PER_JOB", cls.max_urls_per_job, minimum=1
            ),
            max_pages_per_job=read.integer(
                "WORDCRAWL_MAX_PAGES_PER_JOB", cls.max_pages_per_job, minimum=1
            ),
            max_depth=read.integer("WORDCRAWL_MAX_DEPTH", cls.max_depth),
            max_url_length=read.integer("WORDCRAWL_MAX_URL_LENGTH", cls.max_url_length, minimum=1),
            allowed_hosts=parse_allowed_hosts(read.text("WORDCRAWL_ALLOWED_HOSTS", "")),
            allow_private=read.flag("WORDCRAWL_ALLOW_PRIVATE", cls.allow_private),
            user_agent=read.text("WORDCRAWL_USER_AGENT", cls.user_agent),
            connect_timeout=read.number("WORDCRAWL_CONNECT_TIMEOUT", cls.connect_timeout),
            read_timeout=read.number("WORDCRAWL_READ_TIMEOUT", cls.read_timeout),
            page_timeout=read.number("WORDCRAWL_PAGE_TIMEOUT", cls.page_timeout),
            max_response_bytes=read.integer(
                "WORDCRAWL_MAX_RESPONSE_BYTES", cls.max_response_bytes, minimum=1
            ),
            max_redirects=read.integer("WORDCRAWL_MAX_REDIRECTS", cls.max_redirects),
            robots_cache_seconds=read.integer(
                "WORDCRAWL_ROBOTS_CACHE_SECONDS", cls.robots_cache_seconds, minimum=1
            ),
            per_host_concurrency=read.integer(
                "WORDCRAWL_PER_HOST_CONCURRENCY", cls.per_host_concurrency, minimum=1
            ),
            per_host_delay_ms=read.integer("WORDCRAWL_PER_HOST_DELAY_MS", cls.per_host_delay_ms),
            fetch_retries=read.integer("WORDCRAWL_FETCH_RETRIES", cls.fetch_retries),
            max_stored_words=read.integer(
                "WORDCRAWL_MAX_STORED_WORDS", cls.max_stored_words, minimum=1
            ),
            worker_pool=read.text("WORDCRAWL_WORKER_POOL", cls.worker_pool),
            worker_concurrency=read.integer("WORDCRAWL_WORKER_CONCURRENCY", cls.worker_concurrency),
            task_time_limit=read.integer(
                "WORDCRAWL_TASK_TIME_LIMIT", cls.task_time_limit, minimum=1
            ),
            reconcile_seconds=read.integer(
                "WORDCRAWL_RECONCILE_SECONDS", cls.reconcile_seconds, minimum=1
            ),
            job_tasks_in_broker=read.integer(
                "WORDCRAWL_JOB_TASKS_IN_BROKER", cls.job_tasks_in_broker, minimum=1
            ),
            max_pages_per_task=read.integer(
                "WORDCRAWL_MAX_PAGES_PER_TASK", cls.max_pages_per_task, minimum=1
            ),
            schedule_tick_seconds=read.integer(
                "WORDCRAWL_SCHEDULE_TICK_SECONDS", cls.schedule_tick_seconds, minimum=1
            ),
            result_expires_days=read.integer(
                "WORDCRAWL_RESULT_EXPIRES_DAYS", cls.result_expires_days
            ),
            state_dir=read.text("WORDCRAWL_STATE_DIR", cls.state_dir),
            redis_maxmemory=read.memory("WORDCRAWL_REDIS_MAXMEMORY", cls.redis_maxmemory),
        )
        if settings.environment != "development" and settings.secret_key == DEVELOPMENT_SECRET_KEY:
            raise SettingsError(
                "SECRET_KEY must be set when WORDCRAWL_ENV is not 'development' "
                "(it signs the web form's CSRF tokens)"
            )
        return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings of this process, read once from its environment."""
    return Settings.from_env()


def is_placeholder(secret: str | None) -> bool:
    """Say whether a secret is one of .env.example's placeholders (they start "change-me")."""
    return bool(secret) and secret.strip().lower().startswith(PLACEHOLDER_PREFIX)


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:  # not a URL a password can be read from: nothing to compare
        return None
    return None if password is None else unquote(password)


def sqlalchemy_url(database_url: str) -> str:
    """Name the psycopg2 driver in a postgresql:// URL (SQLAlchemy 2.1 no longer assumes it)."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2{sep}{rest}"
    return database_url


def parse_allowed_hosts(value: str) -> frozenset[tuple[str, int]]:
    """Parse WORDCRAWL_ALLOWED_HOSTS, a comma-separated list of host:port."""
    hosts = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        parsed = urlsplit("//" + item)
        try:
            port = parsed.port
        except ValueError as err:
            raise SettingsError(f"WORDCRAWL_ALLOWED_HOSTS: bad port in {item!r}") from err
        if not parsed.hostname or port is None:
            raise SettingsError(f"WORDCRAWL_ALLOWED_HOSTS: {item!r} is not host:port")
        hosts.add((parsed.hostname.lower(), port))
    return frozenset(hosts)


def format_allowed_hosts(hosts: frozenset[tuple[str, int]]) -> str:
    """Write a set of (host, port) back in WORDCRAWL_ALLOWED_HOSTS form."""
    return ",".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in sorted(hosts)
    )


class _Reader:
    """Read typed values from an environment, naming the variable in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError as err:
            raise SettingsError(f"{name} must be a whole number, not {raw!r}") from err
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError as err:
            raise SettingsError(f"{name} must be a number, not {raw!r}") from err
        if not math.isfinite(value) or value <= 0:
            raise SettingsError(f"{name} must be a number above zero, not {raw!r}")
        return value

    def memory(self, name: str, default: str) -> str:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if not re.fullmatch(r"\d+(b|k|kb|m|mb|g|gb)?", raw):
            raise SettingsError(f"{name} must be a size such as 256mb or 1gb, not {raw!r}")
        return raw

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be 1 or 0, not {raw!r}")
