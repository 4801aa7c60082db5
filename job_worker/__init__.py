"""How a worker is started: the `celery worker` command line, shared by every launcher.

Workers take `crawl_pages` tasks from Redis and write results to PostgreSQL. They need only
this package, `job_tasks`, and two environment variables (CELERY_BROKER_URL, DATABASE_URL).
`wordcrawl worker` (also the workers' command in docker-compose.yml), `wordcrawl up` and
the tests build the command here.
"""

from .command import beat_command, worker_command, worker_concurrency

__all__ = ["beat_command", "worker_command", "worker_concurrency"]
