"""Connect to PostgreSQL and create the tables: the database end of the flow.

One SQLAlchemy engine per process and database URL. `init_db` creates wordcrawl's tables
and Celery's result tables before any worker starts, so workers never race to create them.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ..settings import sqlalchemy_url
from .models import Base

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


def init_db(database_url: str, celery_app: Celery | None = None) -> None:
    """Create wordcrawl's tables and, given the Celery app, Celery's result tables.

    Safe to run again: existing tables are left as they are, and indexes added to the
    models since a table was created are created too.
    """
    engine = get_engine(database_url)
    Base.metadata.create_all(engine)
    _add_missing_columns(engine)
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    if celery_app is not None:
        # Opening a result session makes Celery's backend create celery_taskmeta and
        # celery_tasksetmeta (with the result_extended columns) if they are missing.
        celery_app.backend.ResultSession().close()


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable or defaulted columns the models gained since a table was created.

    Enough for a teaching project's few additive changes; a project whose tables change
    in other ways (renames, types) would use migrations (Alembic).
    """
    existing = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            present = {column["name"] for column in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                ddl = f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {column.name} "
                ddl += column.type.compile(engine.dialect)
                if column.server_default is not None:
                    ddl += f" DEFAULT {column.server_default.arg}"
                    ddl += "" if column.nullable else " NOT NULL"
                conn.execute(text(ddl))
                log.info("added column %s.%s", table.name, column.name)
