"""Store Celery's task states in PostgreSQL in one statement each: the result backend.

Celery's database backend (`db+postgresql://...`) writes every state a crawl task goes
through (STARTED, then SUCCESS, FAILURE or RETRY) with three statements in a transaction:
it reads the task's row, reads it again locked, then inserts or updates it through the
ORM: three statements and a commit per state, a large share of a worker's CPU (docs/performance.md,
"Today's figures").

This backend stores the same columns in one `INSERT ... ON CONFLICT (task_id) DO UPDATE`
(PostgreSQL's upsert, atomic without a lock taken by hand). The rule Celery keeps stays:
once a task's row says SUCCESS, a later write (a task delivered twice) changes nothing.
Reading results, expiring them and everything else is Celery's own code. Its connections
are in autocommit mode (celeryconfig.py): one statement needs no BEGIN and COMMIT. The
statement is built once per set of columns: building it took longer than running it.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import states
from celery.backends.database import DatabaseBackend
from kombu.utils.encoding import ensure_bytes
from sqlalchemy.dialects.postgresql import Insert, insert

# Columns Celery fills itself or handles apart (see DatabaseBackend._update_result).
NOT_FROM_META = frozenset(("id", "task_id", "children", "stamps"))


class UpsertDatabaseBackend(DatabaseBackend):
    """Celery's database backend, each state stored by one upsert on PostgreSQL."""

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> None:
        """Store a task's state and result, unless its row already says SUCCESS."""
        meta = self._get_result_meta(
            result=ensure_bytes(self.encode(result)),
            state=state,
            traceback=traceback,
            request=request,
            format_date=False,
            encode=True,
        )
        table = self.task_cls.__table__
        values = {
            column.name: meta.get(column.name)
            for column in table.columns
            if column.name not in NOT_FROM_META
        }
        if "children" in table.columns:
            children = meta.get("children")
            values["children"] = ensure_bytes(self.encode(children)) if children else None
        # One statement on an autocommit connection: no ORM session, no BEGIN or COMMIT.
        # (An error reaches Celery, which drops its connections and tries again.)
        engine = self.session_manager.get_engine(self.url, **self.engine_options)
        self.session_manager.prepare_models(engine)
        with engine.connect() as conn:
            conn.execute(self._upsert(tuple(values)), {"task_id": task_id, **values})

    @functools.lru_cache(maxsize=4)  # noqa: B019 (one backend per process, kept for its life)
    def _upsert(self, names: tuple[str, ...]) -> Insert:
        """The upsert of these columns, built once: its values are filled in at each run.

        Building the statement costs more Python time than PostgreSQL takes to run it.
        """
        table = self.task_cls.__table__
        statement = insert(table)
        return statement.on_conflict_do_update(
            index_elements=[table.c.task_id],
            set_={name: statement.excluded[name] for name in names},
            where=table.c.status != states.SUCCESS,
        )
