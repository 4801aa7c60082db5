"""The package the manager and the workers share: the Celery app and its tasks.

Flow of one page: the manager records it and sends `crawl_pages` through Redis; a worker
fetches it (fetching/), extracts its text and counts its words (reading/) and stores
the counts in PostgreSQL (storing/); Flower and the API show the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .celery_app import app

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # `job_tasks.app` (what `celery -A job_tasks` finds) is made on first use, not when the
    # package is imported: the command line reads job_tasks.settings for every command,
    # and most commands need no Celery app, whose building takes a noticeable while.
    if name == "app":
        from .celery_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
