"""The tables come from Alembic's migrations (job_tasks/storing/schema.py): a new database
and one the first release made both end at the newest revision, matching the models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from job_tasks.storing.db import create_database_if_missing, drop_database, get_engine
from job_tasks.storing.models import Base
from job_tasks.storing.schema import FIRST_RELEASE, alembic_config, init_db, is_ours

pytestmark = pytest.mark.integration

RELEASE_SCHEMA = Path(__file__).with_name("schemas") / "release_0.1_schema.sql"
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def database(services) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL; dropped after."""
    name = f"wordcrawl_schema_{uuid.uuid4().hex[:12]}"
    url = make_url(services.postgres_server_url).set(database=name).render_as_string(False)
    create_database_if_missing(url)
    yield url
    drop_database(url)


def revision_of(database_url: str) -> str:
    with get_engine(database_url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def differences(database_url: str) -> list:
    """What the models have that the database does not, or the other way round."""
    with get_engine(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": is_ours})
        return compare_metadata(context, Base.metadata)


def test_a_new_database_is_migrated_to_the_models_and_again_changes_nothing(database):
    init_db(database)
    assert revision_of(database) == HEAD
    assert differences(database) == []

    init_db(database)  # `wordcrawl init-db` is safe to run again
    assert revision_of(database) == HEAD
    assert differences(database) == []


def test_a_database_of_the_first_release_keeps_its_rows_and_reaches_the_newest_revision(database):
    engine = get_engine(database)
    with engine.begin() as conn:
        conn.exec_driver_sql(RELEASE_SCHEMA.read_text())
        conn.execute(text("SET search_path TO public"))
        conn.execute(
            text(
                "INSERT INTO schedules (id, urls, depth, max_pages, every_minutes, next_run_at)"
                " VALUES (:id, ARRAY['http://example.com/'], 0, 5, 60, now())"
            ),
            {"id": uuid.uuid4()},
        )
        conn.execute(
            text("INSERT INTO jobs (id, status, depth, max_pages) VALUES (:id, 'done', 0, 5)"),
            {"id": uuid.uuid4()},
        )
    engine.dispose()  # the dump's search_path must not follow a pooled connection
    assert revision_of(database) is None

    init_db(database)

    assert FIRST_RELEASE != HEAD and revision_of(database) == HEAD
    assert differences(database) == []
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT runs_skipped, client_key FROM schedules")).all()
        assert kept == [(0, None)]
        assert conn.execute(text("SELECT status, owner_token_hash FROM jobs")).all() == [
            ("done", None)
        ]
        # Celery's own tables are left as the release made them.
        assert conn.execute(text("SELECT count(*) FROM celery_taskmeta")).scalar() == 0
