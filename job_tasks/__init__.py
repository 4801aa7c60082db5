"""The shared contract between the manager and the workers: the Celery app and its tasks.

Flow of one page: the manager records it and sends `crawl_page` through Redis; a worker
fetches it (fetch.py), extracts its text (text.py), counts its words (words.py) and stores
the counts in PostgreSQL (store.py); Flower and the API show the result.
"""

from .celery_app import app

__all__ = ["app"]
