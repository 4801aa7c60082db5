"""The manager's extensions and per-app resources, created once and bound in create_app.

Views reach the settings, the database and the worker census through `settings()`,
`sessions()` and `census()`, which read the running app, so a test can build an app with
its own settings.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from job_tasks.settings import Settings, sqlalchemy_url
from job_tasks.upkeep.census import Census
from job_tasks.upkeep.heartbeat import census_for

csrf = CSRFProtect()
# Who a client is, for the rate limits and the cap of schedules: its address.
limiter_key = get_remote_address
# Counted in Redis so every manager process agrees.
limiter = Limiter(key_func=limiter_key, default_limits=[])
# One budget per client for everything that makes work: the web form, POST /api/jobs (jobs
# and schedules) and the retries (API and web) all count against the same bucket.
submissions_limit = limiter.shared_limit(
    lambda: f"{settings().submissions_per_minute}/minute", scope="submissions"
)


def bind_resources(app: Flask, settings: Settings) -> None:
    """Give an app its settings, its database sessions and its census reader."""
    app.extensions["wordcrawl_settings"] = settings
    app.extensions["wordcrawl_sessions"] = web_sessionmaker(
        settings.database_url, settings.statement_timeout_ms
    )
    # One Redis client (and its connection pool) per app, not one per request.
    app.extensions["wordcrawl_census"] = census_for(settings)


def settings() -> Settings:
    """Return the settings of the running app."""
    return current_app.extensions["wordcrawl_settings"]


def sessions() -> sessionmaker[Session]:
    """Return the session factory of the running app's database (statements time out)."""
    return current_app.extensions["wordcrawl_sessions"]


def census() -> Census:
    """Return the census of the workers, read from the running app's broker."""
    return current_app.extensions["wordcrawl_census"]


@lru_cache(maxsize=8)
def web_sessionmaker(database_url: str, statement_timeout_ms: int) -> sessionmaker[Session]:
    """Return sessions on an engine of the web side, one per process and database.

    Its own engine, not the workers' (job_tasks.storing.db): every statement it runs ends within
    WORDCRAWL_STATEMENT_TIMEOUT_MS, so a slow query or a lock held elsewhere answers 503
    instead of holding one of the manager's few threads for good.
    """
    engine = create_engine(
        sqlalchemy_url(database_url),
        pool_pre_ping=True,  # a connection that died with a restarted server is replaced
        pool_size=10,
        max_overflow=20,
        connect_args={"options": f"-c statement_timeout={statement_timeout_ms}"},
    )
    return sessionmaker(engine, expire_on_commit=False)
