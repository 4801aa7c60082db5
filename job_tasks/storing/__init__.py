"""Storing, the last stage of a page's path: PostgreSQL, where the job record lives.

models.py describes the tables and migrations/ builds them (db.py runs it); submission.py
records a job and its first pages; pages.py moves pages through their states and stores
their counts; release.py decides when a job's waiting pages go to the broker, and in how
many messages (fair sharing); dead_letters.py queues failed pages again;
schedule_runs.py (with cron.py) starts a schedule's runs; prune.py removes old jobs;
result_backend.py stores Celery's task states.
"""
