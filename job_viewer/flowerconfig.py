"""Flower's configuration for wordcrawl, read by `celery flower --conf=...`.

Flower applies FLOWER_* environment variables first, then this file, then the command
line; so this file sets only what every deployment wants, and refuses to start Flower
without credentials, or in production with the placeholder password of .env.example.
"""

from tornado.options import options

from job_tasks.settings import get_settings, is_placeholder

# Keep the task history across restarts, saving every 10 s, not only on a clean stop.
persistent = True
state_save_interval = 10_000
# Bounded memory: Flower keeps this many tasks (its default, 100,000, grows for weeks).
max_tasks = 20_000
# Ask workers to send events, so a worker started without -E still shows its tasks.
enable_events = True
# Forget workers that have been offline for 10 minutes (scaled-down containers).
purge_offline_workers = 600
# The task list shows each task's arguments too: a crawl_pages task's are its pages' ids and
# URLs, so a student sees which page each task crawled (Flower 2.2's default leaves them out).
tasks_columns = "name,uuid,state,args,received,runtime,worker"

if not (options.basic_auth or options.auth):
    raise SystemExit(
        "Flower must not run without a password: set FLOWER_BASIC_AUTH=user:password "
        "(`wordcrawl up` makes one for you)."
    )
# In production, a password copied from .env.example is no password.
if get_settings().environment != "development" and any(
    is_placeholder(login.partition(":")[2]) for login in options.basic_auth or []
):
    raise SystemExit(
        "FLOWER_BASIC_AUTH still holds the placeholder password of .env.example: set a "
        "password of your own before running Flower in production."
    )
