"""The instructor's login page: `/login` and `/logout` (owners.py says what it allows).

The instructor (WORDCRAWL_ADMIN_PASSWORD) logs in once in a browser; the signed session
then carries a mark that lets that browser cancel, retry, pause and delete anyone's jobs
and schedules. A CSRF-protected form, the password compared in constant time, and a few
tries per minute per client, so the password cannot be guessed by trying.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..extensions import limiter, settings
from ..owners import check_instructor_password, instructor_mark

LOGIN_TRIES_PER_MINUTE = 5  # per client address, over every manager process

bp = Blueprint("web_auth", __name__)


@bp.get("/login")
def login() -> str:
    return render_template("login.html", error=None, enabled=bool(settings().admin_password))


@bp.post("/login")
@limiter.limit(f"{LOGIN_TRIES_PER_MINUTE}/minute")
def check_login() -> Response | tuple[str, int]:
    """Log the instructor in, or show the form again saying why not."""
    enabled = bool(settings().admin_password)
    if not check_instructor_password(request.form.get("password", "")):
        error = (
            "that is not the instructor's password"
            if enabled
            else "this server has no instructor login (WORDCRAWL_ADMIN_PASSWORD is not set)"
        )
        return render_template("login.html", error=error, enabled=enabled), 403
    session["instructor"] = instructor_mark()
    flash("You are logged in as the instructor.", "notice")
    return redirect(url_for("web.index"), code=303)


@bp.post("/logout")
def logout() -> Response:
    session.pop("instructor", None)
    flash("You are logged out.", "notice")
    return redirect(url_for("web.index"), code=303)
