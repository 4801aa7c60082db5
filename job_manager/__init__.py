"""The job manager: the Flask app (web form + JSON API), the front of the flow.

A student's URLs come in here (api/ for programs, web/ for browsers), become rows in
PostgreSQL and tasks on the Redis broker (job_tasks.sending); results are read back from
PostgreSQL (queries.py). The blueprints share what they check and change in
job_requests.py, schedule_requests.py, dead_letter_requests.py and run_changes.py; who may
change what is owners.py.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from job_tasks.settings import Settings, get_settings

from . import metrics, owners
from .api import dead_letters as api_dead_letters
from .api import jobs as api_jobs
from .api import schedules as api_schedules
from .errors import register_error_handlers
from .extensions import bind_resources, csrf, limiter
from .shared_answers import SharedAnswers
from .web import dead_letter_pages, job_pages, login, schedule_pages

# No inline scripts or styles, nothing from other sites, no framing by other sites.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the manager app; `config` overrides Flask settings, `settings` wordcrawl's."""
    settings = settings or get_settings()
    # In production, a secret copied from .env.example is no secret: refuse to start.
    settings.refuse_placeholder_secrets()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        WTF_CSRF_TIME_LIMIT=None,  # a form left open in class still submits
        # The session says which jobs a browser may change: never sent by another site.
        SESSION_COOKIE_SAMESITE="Lax",
        RATELIMIT_STORAGE_URI=settings.broker_url,
        RATELIMIT_HEADERS_ENABLED=True,  # Retry-After on 429
        RATELIMIT_SWALLOW_ERRORS=True,  # a Redis hiccup must not turn every request into a 500
    )
    app.config.update(config or {})
    app.json.sort_keys = False  # keep fields in the documented order (docs/reference.md)
    bind_resources(app, settings)

    csrf.init_app(app)
    limiter.init_app(app)
    register_error_handlers(app)

    for api in (api_jobs, api_schedules, api_dead_letters):
        csrf.exempt(api.bp)  # JSON only (checked there): a cross-site form cannot send it
        app.register_blueprint(api.bp)
    for web in (job_pages, schedule_pages, dead_letter_pages, login):
        app.register_blueprint(web.bp)
    app.register_blueprint(metrics.bp)
    # Answers that many requests share (the dashboard's activity, the metrics).
    app.extensions["wordcrawl_answers"] = SharedAnswers()

    @app.context_processor
    def who_is_asking() -> dict[str, object]:
        # The menu says who you are; the pages show buttons only to those they work for.
        return {
            "is_instructor": owners.is_instructor(),
            "owned_in_session": owners.owned_in_session(),
            "instructor_login": bool(settings.admin_password),
        }

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
