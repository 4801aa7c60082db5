"""The manager's extensions and per-app resources, created once and bound in create_app.

Views reach the settings and the database through `settings()` and `sessions()`, which
read the running app, so a test can build an app with its own settings.
"""

from __future__ import annotations

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect
from sqlalchemy.orm import Session, sessionmaker

from job_tasks.db import get_sessionmaker
from job_tasks.settings import Settings

csrf = CSRFProtect()
# Submissions per client per minute; counted in Redis so every manager process agrees.
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def settings() -> Settings:
    """Return the settings of the running app."""
    return current_app.extensions["wordcrawl_settings"]


def sessions() -> sessionmaker[Session]:
    """Return the session factory of the running app's database."""
    return get_sessionmaker(settings().database_url)
