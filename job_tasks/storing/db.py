"""Connect to PostgreSQL, and make or drop a database: the database end of the flow.

One SQLAlchemy engine per process and database URL, and the database itself made or
dropped. The tables are schema.py's business (`wordcrawl init-db`).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ..settings import sqlalchemy_url

log = logging.getLogger(__name__)


_engines: dict[str, Engine] = {}


def get_engine(database_url: str) -> Engine:
    """Return this process's engine for a database URL, creating it on first use."""
    engine = _engines.get(database_url)
    if engine is None:
        engine = _engines[database_url] = create_engine(
            sqlalchemy_url(database_url),
            # A connection that died with a restarted server is replaced, not handed out.
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
        )
    return engine


@lru_cache(maxsize=8)
def get_sessionmaker(database_url: str) -> sessionmaker[Session]:
    """Return a factory of ORM sessions bound to this process's engine."""
    return sessionmaker(get_engine(database_url), expire_on_commit=False)


@worker_process_init.connect
def _forget_parent_connections(**_: object) -> None:
    # A prefork child inherits its parent's pooled sockets; two processes talking on one
    # socket corrupt each other's traffic. close=False leaves the parent's sockets alone.
    for engine in _engines.values():
        engine.dispose(close=False)


@worker_init.connect
def _pool_result_connections(sender, **_: object) -> None:
    # Celery's database result backend keeps a pool of connections only in processes it
    # sees forked (prefork's pool processes); anywhere else it opens a new PostgreSQL
    # connection for every state it stores, three per page. A threads, gevent or solo
    # worker runs tasks in the process that started, where no fork can share a socket:
    # let the backend pool there too, as it does in prefork's children.
    if not issubclass(get_implementation(sender.pool_cls), PreforkPool):
        sender.app.backend.session_manager.forked = True


def create_database_if_missing(database_url: str) -> bool:
    """Create the database named in the URL when its server answers but it does not exist.

    Returns True when it had to be created.
    """
    url = make_url(sqlalchemy_url(database_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if exists:
                return False
            quoted = admin.dialect.identifier_preparer.quote(url.database)
            conn.execute(text(f"CREATE DATABASE {quoted}"))
            log.info("created database %s", url.database)
            return True
    finally:
        admin.dispose()


def drop_database(database_url: str) -> None:
    """Drop the database named in the URL, closing every session still in it.

    For the tests and benchmarks that create a database of their own; never for data.
    """
    engine = _engines.pop(database_url, None)
    if engine is not None:
        engine.dispose()
    url = make_url(sqlalchemy_url(database_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            quoted = admin.dialect.identifier_preparer.quote(url.database)
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        admin.dispose()
