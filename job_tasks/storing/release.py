"""Fair sharing: when a job's waiting pages go to the broker, and in how many messages.

A job has at most `in_broker` task messages in the broker at once, waiting or running
(WORDCRAWL_JOB_TASKS_IN_BROKER). Its other pages wait in PostgreSQL as `queued` with no
task id yet; each message that ends releases the next pages of its job (`release_pages`,
called under the job's row lock by whoever ended it: storing/pages.py, the upkeep, dead
letters). So a 1,000-page crawl holds a few places in the queue, and a one-page job
submitted during it waits behind those few, not behind the whole crawl.

Which pages travel together (`messages_for`): a job's waiting pages travel alone while they
fit in its free messages and no message waits in Redis for a worker. When more of them wait
than it has free messages, they are spread over all of them; while messages wait for a
worker (every worker busy), they share as few messages as WORDCRAWL_MAX_PAGES_PER_TASK
(Settings.group_size) allows. So a lone page is one task in Flower, and a backlog, or a
class keeping every worker busy, travels in groups (sending.enqueue_pages sends one
message per task id).
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, distinct, exists, func, select, text

from ..sending import crawl_queue_waiting
from ..settings import get_settings
from .models import OPEN_PAGE_STATUSES, Page


class NewPage(NamedTuple):
    """A page to send to the workers: its id, the task id it travels under, and its URL
    (shown beside the task in Flower)."""

    id: int
    task_id: str
    url: str


# Where a job's open pages stand: how many task messages it has in the broker (the
# distinct task ids of its open pages that have one: the pages of a group share theirs),
# and whether any page waits in PostgreSQL for room (fair sharing). Each question is its
# own subquery, answered from its own partial index (models.py: pages_in_broker,
# pages_waiting), so neither reads the job's other pages.
OPEN_PAGES = select(
    select(func.count(distinct(Page.task_id)))
    .where(
        Page.job_id == bindparam("job_id"),
        Page.status.in_(OPEN_PAGE_STATUSES),
        Page.task_id.is_not(None),
    )
    .scalar_subquery()
    .label("sent"),
    exists()
    .where(Page.job_id == bindparam("job_id"), Page.status == "queued", Page.task_id.is_(None))
    .label("waiting"),
)
# A job's next `room` waiting pages, in the order they were found, get the task ids given,
# the n-th page the n-th id (queued_at: when the page entered the broker's queue; the
# reconciler gives a page that long to show up there before it counts its message as lost).
RELEASE_PAGES = text(
    """
    WITH next AS (
        SELECT id, row_number() OVER (ORDER BY id) AS n
        FROM pages
        WHERE job_id = :job_id AND status = 'queued' AND task_id IS NULL
        ORDER BY id
        LIMIT :room
    )
    UPDATE pages
    SET task_id = (CAST(:task_ids AS text[]))[next.n], queued_at = now()
    FROM next
    WHERE pages.id = next.id
    RETURNING pages.id, pages.task_id, pages.url
    """
)
# How many pages of a job wait in PostgreSQL for room in the broker, counted up to `room`.
WAITING_PAGES = text(
    "SELECT count(*) FROM (SELECT 1 FROM pages WHERE job_id = :job_id AND status = 'queued'"
    " AND task_id IS NULL LIMIT :room) AS waiting"
)


def release_pages(
    conn: Connection, job_id: uuid.UUID, in_broker: int, sent: int | None = None
) -> list[NewPage]:
    """Give task ids to a job's next waiting pages, so that it has up to `in_broker` task
    messages in the broker at once; return them, to be sent after the commit.

    Call with the job's row locked (two finishers must not both fill the same places).
    `sent`, when the caller has just counted them, is how many task messages the job has
    in the broker (its open pages' distinct task ids). Pages are released in the order
    they were found, so a crawl still goes level by level, alone or grouped as
    `task_ids_for` says.
    """
    if sent is None:
        sent = conn.execute(OPEN_PAGES, {"job_id": job_id}).one().sent
    free = in_broker - sent
    if free <= 0:
        return []
    group_size = get_settings().group_size
    room = free * group_size
    waiting = conn.execute(WAITING_PAGES, {"job_id": job_id, "room": room}).scalar_one()
    messages = messages_for(waiting, free, group_size, crawl_queue_waiting())
    rows = conn.execute(
        RELEASE_PAGES,
        {"job_id": job_id, "room": room, "task_ids": task_ids_for(waiting, messages)},
    ).all()
    return sorted(NewPage(row.id, row.task_id, row.url) for row in rows)


def messages_for(pages: int, free: int, group_size: int, queue_waiting: bool) -> int:
    """How many task messages carry a job's next `pages` waiting pages (at most `free` x
    group_size), with `free` of its messages free.

    More pages than free messages: spread over all of them (each page of a group runs on
    a worker at once, side by side). Otherwise each page travels alone, unless messages
    already wait in the broker for a worker: then every worker is busy, and the pages
    share as few messages as group_size allows, so the per-message costs are shared too.
    """
    if pages > free:
        return free
    if not queue_waiting:
        return pages
    return -(-pages // group_size)  # pages / group_size, rounded up


def task_ids_for(count: int, messages: int) -> list[str]:
    """Task ids for `count` pages travelling in `messages` task messages, in order: page n
    travels under the (n mod messages)-th id, so the groups differ by one page at most
    (sending.enqueue_pages sends one message per task id)."""
    ids = [str(uuid.uuid4()) for _ in range(max(1, min(count, messages)))]
    return [ids[n % len(ids)] for n in range(count)]
