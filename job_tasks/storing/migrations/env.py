"""Run Alembic's migrations on the connection `schema.py` hands over (`wordcrawl init-db`).

The models (models.py) are the target, so `alembic.autogenerate` can compare them with a
database; Celery's own tables are left out of that comparison (schema.is_ours).
"""

from __future__ import annotations

from alembic import context

from job_tasks.storing.models import Base
from job_tasks.storing.schema import is_ours

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    include_object=is_ours,
)
with context.begin_transaction():
    context.run_migrations()
