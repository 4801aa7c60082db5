"""Create the Celery app that the manager sends tasks with and the workers run.

`celery -A job_tasks worker` finds it as `job_tasks.app`.
"""

from __future__ import annotations

from celery import Celery

from .celeryconfig import celery_config
from .heartbeat import Heartbeat
from .reconcile import ReconcileTimer
from .settings import Settings, get_settings


def create_celery(settings: Settings) -> Celery:
    """Make a Celery app configured from wordcrawl's settings."""
    app = Celery("wordcrawl", include=["job_tasks.tasks", "job_tasks.schedules"])
    app.conf.update(celery_config(settings))
    # `db+postgresql://...` results are stored by one upsert per state (result_backend.py)
    # instead of Celery's read, locked read and write.
    app.loader.override_backends = {"db": "job_tasks.result_backend:UpsertDatabaseBackend"}
    # Every worker reports to the census that it lives (heartbeat.py), and asks now and
    # then for lost pages to be found and sent again.
    app.steps["worker"].add(Heartbeat)
    app.steps["worker"].add(ReconcileTimer)
    return app


app = create_celery(get_settings())
