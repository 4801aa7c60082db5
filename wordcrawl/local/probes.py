"""Ask whether a Redis or PostgreSQL server answers, and find free ports for new ones.

The smallest pieces of `wordcrawl up`'s start (services.py, embedded.py): each call asks
once, with a short timeout, and never raises for a server that is down.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import psycopg2
import redis
from sqlalchemy.engine import make_url


class ServiceError(RuntimeError):
    """A server could not be found or started; the message says what to do."""


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Say whether a Redis server answers PING at this URL."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_maxmemory(url: str) -> int | None:
    """Return the `maxmemory` of the Redis at `url` (0: none), or None when it will not say.

    A managed Redis may refuse CONFIG (renamed, or an ACL without it): then we know nothing.
    """
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return int(client.config_get("maxmemory")["maxmemory"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()


def postgres_answers(database_url: str, timeout: int = 2) -> bool:
    """Say whether the PostgreSQL server of this URL accepts a connection."""
    url = make_url(database_url).set(drivername="postgresql", database="postgres")
    try:
        conn = psycopg2.connect(url.render_as_string(hide_password=False), connect_timeout=timeout)
    except psycopg2.OperationalError:
        return False
    conn.close()
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Say whether something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Say whether a TCP port can be bound on host (as a server would, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
) -> None:
    """Poll `check()` until it is true; raise ServiceError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{what} exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not answer within {timeout:g} s")
        time.sleep(0.1)
