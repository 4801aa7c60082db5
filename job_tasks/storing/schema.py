"""Create and migrate the tables: Alembic's migrations, run to the newest by `init_db`.

`wordcrawl init-db` calls `init_db` before any worker starts, so workers never race to
create tables. The migrations live in migrations/versions/, oldest first; the first (0001)
is the first release's tables. A database that release made has those tables but no
`alembic_version`: it is stamped at 0001, then upgraded like any other. Celery's tables
(celery_taskmeta...) are Celery's own (`init_db` has Celery's backend make them) and stay
out of the migrations.
"""

from __future__ import annotations

import logging
from typing import Any

from alembic import command
from alembic.config import Config
from celery import Celery
from sqlalchemy import Connection, inspect, text

from .db import get_engine

log = logging.getLogger(__name__)

MIGRATIONS = "job_tasks.storing:migrations"  # a package's folder: found in a wheel too
FIRST_RELEASE = "0001"  # the revision a database made before migrations existed is at
# One number for every `init-db` on a database: two at once take turns, not race.
SCHEMA_LOCK = 0x776F7264  # "word"


def init_db(database_url: str, celery_app: Celery | None = None) -> None:
    """Bring wordcrawl's tables to the newest migration and, given the Celery app, create
    Celery's result tables. Safe to run again: what is there already is left as it is."""
    upgrade(database_url)
    if celery_app is not None:
        # Opening a result session makes Celery's backend create celery_taskmeta and
        # celery_tasksetmeta (with the result_extended columns) if they are missing.
        celery_app.backend.ResultSession().close()


def alembic_config(connection: Connection | None = None) -> Config:
    """Return Alembic's configuration for wordcrawl's migrations, run on `connection`."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def upgrade(database_url: str) -> None:
    """Migrate the database to the newest revision, in one transaction (safe to repeat)."""
    with get_engine(database_url).begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        config = alembic_config(connection)
        tables = set(inspect(connection).get_table_names())
        if "jobs" in tables and "alembic_version" not in tables:
            log.info("tables of the first release found: stamped at %s", FIRST_RELEASE)
            command.stamp(config, FIRST_RELEASE)
        command.upgrade(config, "head")


def revision(database_url: str, message: str) -> None:
    """Write a new migration from what the models have that the database lacks (Alembic's
    autogenerate), for a person to read and correct before committing it."""
    with get_engine(database_url).begin() as connection:
        command.revision(alembic_config(connection), message, autogenerate=True)


def is_ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Tell Alembic which database objects are wordcrawl's: not Celery's tables."""
    return not (type_ == "table" and name is not None and name.startswith("celery_"))
