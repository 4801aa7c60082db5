"""Create the Celery app that the manager sends tasks with and the workers run.

`celery -A job_tasks worker` finds it as `job_tasks.app`.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import beat_init

from .celeryconfig import celery_config
from .settings import Settings, get_settings
from .upkeep.heartbeat import Heartbeat


def create_celery(settings: Settings) -> Celery:
    """Make a Celery app configured from wordcrawl's settings."""
    app = Celery("wordcrawl", include=["job_tasks.tasks"])
    app.conf.update(celery_config(settings))
    # `db+postgresql://...` results are stored by one upsert per state (storing/result_backend.py)
    # instead of Celery's read, locked read and write.
    app.loader.override_backends = {"db": "job_tasks.storing.result_backend:UpsertDatabaseBackend"}
    # Every worker reports to the census that it lives (upkeep/heartbeat.py), and takes its turn
    # at the deployment's upkeep (upkeep/recovery.py). The upkeep step is named, not imported: it
    # sends tasks through this app (sending.py), which must exist first.
    app.steps["worker"].add(Heartbeat)
    app.steps["worker"].add("job_tasks.upkeep.recovery:Upkeep")
    return app


@beat_init.connect
def _no_sent_events_from_beat(sender, **_: object) -> None:
    # Beat sends only upkeep ticks (start_due_runs), which Flower need not show: their
    # task sends no events, but the "task-sent" event is the sender's, and the setting
    # is one for every task the process sends (Celery's send_task). In beat, it is off.
    sender.app.conf.task_send_sent_event = False


app = create_celery(get_settings())
