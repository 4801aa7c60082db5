"""Who may change a job or a schedule: its owner, or the instructor (docs/reference.md,
"Owners, tokens and the instructor").

Reading stays open to the whole class; cancelling or retrying a job, and pausing,
resuming or deleting a schedule, need one of:
- the token that `POST /api/jobs` answered once, sent as `Authorization: Bearer <token>`
  (the row keeps only its sha256, `owner_token_hash`; a schedule's runs keep its hash);
- the signed session of the browser whose form submitted it (the newest OWNED_IN_SESSION
  ids it created; a schedule's id stands for its runs too);
- the instructor: HTTP basic auth as `admin` with WORDCRAWL_ADMIN_PASSWORD, or the web
  login (web/login.py), which marks the session.
Anyone else gets 403 `forbidden` (`require_owner`), and nothing changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from flask import request, session
from sqlalchemy import select
from sqlalchemy.orm import Session

from job_tasks.storing.models import Job, Schedule

from .errors import ApiError
from .extensions import limiter_key, sessions, settings

INSTRUCTOR = "admin"  # the user name of HTTP basic auth
OWNED_IN_SESSION = 50  # ids a browser remembers: a signed cookie must stay under 4 KB
TOKEN_BYTES = 24  # 192 random bits: no one guesses a token, however fast they ask


@dataclass(frozen=True)
class Owner:
    """What proves ownership of one job or schedule: its token's hash and its ids."""

    token_hash: str | None
    ids: tuple[uuid.UUID | None, ...]  # the row's id, and for a run its schedule's


def new_token() -> tuple[str, str]:
    """Return a fresh owner token (shown once) and the hash to store instead."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    """Return the hash of a token that a row keeps (sha256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def job_owner(db: Session, job_id: uuid.UUID) -> Owner | None:
    """Return what proves ownership of a job, or None if there is no such job."""
    row = db.execute(select(Job.owner_token_hash, Job.schedule_id).where(Job.id == job_id)).first()
    if row is None:
        return None
    return Owner(row.owner_token_hash, (job_id, row.schedule_id))


def schedule_owner(db: Session, schedule_id: uuid.UUID) -> Owner | None:
    """Return what proves ownership of a schedule, or None if there is no such schedule."""
    token_hash = db.execute(
        select(Schedule.owner_token_hash).where(Schedule.id == schedule_id)
    ).first()
    return None if token_hash is None else Owner(token_hash[0], (schedule_id,))


def may_change(owner: Owner) -> bool:
    """Say whether this request may change what `owner` describes."""
    return is_instructor() or _shows_token(owner.token_hash) or _in_session(owner.ids)


def require_owner(owner: Owner, what: str) -> None:
    """Raise ApiError(403 forbidden) unless this request may change `what`."""
    if not may_change(owner):
        raise ApiError(
            403,
            "forbidden",
            f"only whoever submitted this {what} may change it: send its token "
            "(Authorization: Bearer <token>), use the browser that submitted it, "
            "or log in as the instructor",
        )


def require_job_owner(job_id: uuid.UUID) -> None:
    """Raise ApiError: 404 if there is no such job, 403 unless this request may change it."""
    with sessions()() as db:
        owner = job_owner(db, job_id)
    if owner is None:
        raise ApiError(404, "not_found", f"there is no job {job_id}")
    require_owner(owner, "job")


def require_schedule_owner(schedule_id: uuid.UUID) -> None:
    """Raise ApiError: 404 if there is no such schedule, 403 unless this request may change it."""
    with sessions()() as db:
        owner = schedule_owner(db, schedule_id)
    if owner is None:
        raise ApiError(404, "not_found", f"there is no schedule {schedule_id}")
    require_owner(owner, "schedule")


def changeable_jobs(db: Session, job_ids: Iterable[str]) -> set[str]:
    """Return which of these jobs this request may change (for the buttons a page shows)."""
    wanted = [uuid.UUID(job_id) for job_id in set(job_ids)]
    if not wanted:
        return set()
    if is_instructor():
        return {str(job_id) for job_id in wanted}
    rows = db.execute(
        select(Job.id, Job.owner_token_hash, Job.schedule_id).where(Job.id.in_(wanted))
    )
    return {
        str(row.id)
        for row in rows
        if may_change(Owner(row.owner_token_hash, (row.id, row.schedule_id)))
    }


def client_key() -> str:
    """Return who is asking, as the schedule cap counts clients: a keyed hash of the
    rate limiter's key (the client's address), so no address is ever stored."""
    key = settings().secret_key.encode()
    return hmac.new(key, b"client:" + limiter_key().encode(), "sha256").hexdigest()


def remember(item_id: uuid.UUID) -> None:
    """Let this browser change a job or schedule its form created (newest first, bounded)."""
    owned = [item_id.hex, *(old for old in session.get("owned", []) if old != item_id.hex)]
    session["owned"] = owned[:OWNED_IN_SESSION]


def owned_in_session() -> int:
    """Return how many jobs and schedules this browser remembers having created."""
    return len(session.get("owned", []))


def is_instructor() -> bool:
    """Say whether the request comes from the instructor (basic auth or the web login)."""
    password = settings().admin_password
    if not password:
        return False
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return _same(auth.username or "", INSTRUCTOR) and _same(auth.password or "", password)
    return _same(session.get("instructor", ""), instructor_mark())


def instructor_mark() -> str:
    """Return what the web login writes into the instructor's session.

    Keyed by SECRET_KEY and the password: the signed cookie shows nothing to guess the
    password from, and changing the password logs every instructor's browser out.
    """
    key = settings().secret_key.encode()
    return hmac.new(key, b"instructor:" + settings().admin_password.encode(), "sha256").hexdigest()


def check_instructor_password(given: str) -> bool:
    """Say whether `given` is the instructor's password (never true when none is set)."""
    password = settings().admin_password
    return bool(password) and _same(given, password)


def _shows_token(token_hash: str | None) -> bool:
    auth = request.authorization
    if token_hash is None or auth is None or auth.type != "bearer" or not auth.token:
        return False
    return _same(hash_token(auth.token), token_hash)


def _in_session(ids: Iterable[uuid.UUID | None]) -> bool:
    owned = set(session.get("owned", []))
    return any(item is not None and item.hex in owned for item in ids)


def _same(given: str, expected: str) -> bool:
    # In constant time, so the time of an answer tells nothing about how much matched.
    return hmac.compare_digest(given.encode(), expected.encode())
