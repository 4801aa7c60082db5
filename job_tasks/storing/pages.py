"""Write a page's progress and counts to PostgreSQL: the last step a worker takes.

Every write is safe to repeat, because Celery may deliver a task twice (late acks), and a
page whose worker seems dead is sent again while that worker may only be paused:
- a page is claimed only by the task its row names, while it is open and its job too;
- each claim counts a start (`attempts`), the run's claim token: a page is ended (or
  retried) only from `running` and only with the token of its last claim, so of two runs
  of one page at most one writes, and a run that was overtaken writes nothing;
- its words go in the same transaction as its `done` status, so a reader never sees half
  a page, and the word rows cannot be written twice.
A counted page's links become new pages of its job (docs/how-it-works.md, "How a crawl
goes") in that same transaction, while the job's row is locked: the unique (job_id, url) row decides
whether a URL is new, and the lock makes the count against max_pages exact. The same lock
makes ending the job exact: when two workers finish the last two pages at once, exactly
one of them sees no page left and ends the job. Each page that ends lets its job send the
next of its waiting pages (release.py: fair sharing, and which pages travel together).

The statements run on a connection of the engine (SQLAlchemy Core), not through the ORM: a
worker writes two transactions per page (or per group of pages sent together: one claims
them all, one stores them all), and an ORM session's bookkeeping of objects nobody reads
back would cost more than the statements themselves. The statements a worker runs for every page are
built once (below); finishing counted pages takes two of them (lock their job, end them
and store their words; then read where the job's pages stand), each round trip and each
commit costing PostgreSQL CPU that the crawl shares (docs/performance.md, "What limits the speed").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Engine,
    Row,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from ..page_errors import PageError
from ..reading.words import most_frequent
from ..settings import get_settings
from .models import OPEN_JOB_STATUSES, OPEN_PAGE_STATUSES, Job, Page, PageAttempt, WordCount
from .release import OPEN_PAGES, NewPage, release_pages

# One statement locks the job's row of counted pages, ends the pages (only from `running`,
# and only while their claim token is the one this run got: `attempts`, see CLAIM_PAGES)
# and stores all their words. The pages' columns arrive as arrays, one element per page;
# their words and counts as space-separated strings, with the page of each word in a third,
# split into arrays and unnested into rows by PostgreSQL (a list of rows would be sent as
# one INSERT per word; Python lists, quoted word by word as array literals, cost the
# worker several times the CPU). A word never holds a space (reading/words.py). `ended` lists the
# pages this statement ended: a page that had ended already (a task delivered twice), or
# that another run has claimed since, is not in it, and its words are not written (they
# are only ever written with the `done` status, so they cannot conflict).
# Lock order: the job's row before any page row, as everywhere (claim, cancel, retry): the
# pages' UPDATE needs `job` (EXISTS), so PostgreSQL takes the job's lock first. Taken the
# other way round, a cancel (job, then its queued pages) and a worker ending a page that
# was queued in the cancel's snapshot would each wait for the other: a deadlock.
FINISH_PAGES = text(
    """
    WITH job AS (
        SELECT id, status, depth, max_pages FROM jobs WHERE id = :job_id FOR UPDATE
    ), counted AS (
        SELECT * FROM unnest(
            CAST(:page_ids AS bigint[]), CAST(:http_statuses AS integer[]),
            CAST(:titles AS text[]), CAST(:word_counts AS integer[]),
            CAST(:unique_words AS integer[]), CAST(:elapsed_ms AS integer[]),
            CAST(:messages AS text[]), CAST(:attempts AS integer[])
        ) AS c(id, http_status, title, word_count, unique_words, elapsed_ms, message, attempt)
    ), ended AS (
        UPDATE pages
        SET status = 'done', http_status = c.http_status, title = c.title,
            word_count = c.word_count, unique_words = c.unique_words, error = NULL,
            message = c.message, finished_at = now(), elapsed_ms = c.elapsed_ms
        FROM counted AS c
        WHERE pages.id = c.id AND pages.status = 'running' AND pages.attempts = c.attempt
            AND EXISTS (SELECT FROM job)
        RETURNING pages.id, pages.depth
    ), words AS (
        INSERT INTO word_counts (page_id, word, count)
        SELECT w.page_id, w.word, w.count
        FROM unnest(
            CAST(string_to_array(:word_pages, ' ') AS bigint[]),
            string_to_array(:words, ' '),
            CAST(string_to_array(:counts, ' ') AS integer[])
        ) AS w(page_id, word, count)
        JOIN ended ON ended.id = w.page_id
    )
    SELECT ARRAY(SELECT id FROM ended) AS ended,
        ARRAY(SELECT depth FROM ended) AS ended_depths, job.* FROM job
    """
)
# One failed attempt of a page, with the worker and start time of the page's row.
RECORD_ATTEMPT = text(
    "INSERT INTO page_attempts "
    "(page_id, attempt, outcome, error, message, http_status, worker, task_id, started_at,"
    " finished_at) "
    "SELECT id, :attempt, :outcome, :error, :message, :http_status, worker, task_id, started_at,"
    " now() "
    "FROM pages WHERE id = :page_id "
    "ON CONFLICT DO NOTHING"
)
# A page that failed for now leaves its message and is sent again, under `new_task_id`,
# to be tried later: only while this run's claim holds, and while the page has been
# retried fewer than `max_tries` times since its last outcome (its history: `retried`
# rows after its last `failed` one, which a page queued again by hand starts afresh
# from). The attempt is recorded with the task it ran under (`old`, read before the
# UPDATE: every part of one statement sees the rows as they were when it began).
# `retried` says whether the page was moved; `tries`, how many retries it had before.
RETRY_PAGE = text(
    """
    WITH tries AS (
        SELECT count(*) AS n FROM page_attempts
        WHERE page_id = :page_id AND outcome = 'retried' AND attempt > (
            SELECT coalesce(max(attempt), 0) FROM page_attempts
            WHERE page_id = :page_id AND outcome = 'failed'
        )
    ), old AS (
        SELECT worker, task_id, started_at FROM pages WHERE id = :page_id
    ), moved AS (
        UPDATE pages SET task_id = :new_task_id
        WHERE id = :page_id AND status = 'running' AND attempts = :attempt
            AND (SELECT n FROM tries) < :max_tries
        RETURNING id
    ), recorded AS (
        INSERT INTO page_attempts
            (page_id, attempt, outcome, error, message, http_status, worker, task_id,
             started_at, finished_at)
        SELECT moved.id, :attempt, 'retried', :error, :message, :http_status, old.worker,
            old.task_id, old.started_at, now()
        FROM moved, old
        ON CONFLICT DO NOTHING
    )
    SELECT EXISTS (SELECT FROM moved) AS retried, (SELECT n FROM tries) AS tries
    """
)


# The statements a worker runs for every page are built once, here, with named parameters
# (bindparam) filled in at each run. Building a statement is Python work (for the claim
# below, more than PostgreSQL takes to run it); a statement built once is also
# compiled to SQL once, and SQLAlchemy reuses that SQL from its cache.

# A job starts (queued -> running) with its first claimed page; a running job is not
# written to (and not locked) by the claims of its other pages.
PAGE_IDS = bindparam("page_ids", type_=ARRAY(BigInteger))
START_JOB = (
    update(Job)
    .where(Job.id.in_(select(Page.job_id).where(Page.id == any_(PAGE_IDS))))
    .where(Job.status == "queued")
    .values(status="running", started_at=func.now())
)
# A page is claimed only by the task its row names (a page sent again gets a new task id,
# so the message it had before finds nothing to do), while the page and its job are open
# (not ended, not cancelled). A running page may be claimed again by that same task: its
# message came back because the process running it died (task_reject_on_worker_lost), or
# Celery sent it again after PostgreSQL or Redis was away for a moment.
# The claim counts a start (`attempts`), and that number is the run's claim token: every
# write that ends or retries the page checks it (FINISH_PAGES, FAIL_PAGE, RETRY_PAGE), so
# a run whose page was given to another run since (its worker seemed dead: stopped,
# cut off) writes nothing, and only the run that claimed the page last can end it.
CLAIM_PAGES = (
    update(Page)
    .where(
        Page.id == any_(PAGE_IDS),
        Page.task_id == bindparam("task"),  # ("task_id" is the column's own name)
        Page.status.in_(OPEN_PAGE_STATUSES),
        select(Job.id).where(Job.id == Page.job_id, Job.status.in_(OPEN_JOB_STATUSES)).exists(),
    )
    .values(
        status="running",
        started_at=func.now(),
        attempts=Page.attempts + 1,
        worker=bindparam("worker"),
    )
    .returning(Page.id, Page.job_id, Page.url, Page.depth, Page.attempts)
)
# A page that could not be counted ends as failed (only from `running`, and only by the run
# that claimed it, as FINISH_PAGES).
FAIL_PAGE = (
    update(Page)
    .where(
        Page.id == bindparam("page_id"),
        Page.status == "running",
        Page.attempts == bindparam("attempt"),
    )
    .values(
        status="failed",
        http_status=bindparam("http_status"),
        error=bindparam("error"),
        message=bindparam("message"),
        finished_at=func.now(),
        elapsed_ms=bindparam("elapsed_ms"),
    )
    .returning(Page.id)
)
LOCK_JOB = (
    select(Job.id, Job.status, Job.depth, Job.max_pages)
    .where(Job.id == bindparam("job_id"))
    .with_for_update()
)


@dataclass(frozen=True)
class ClaimedPage:
    """A page a worker has started, with what it needs to know about its job."""

    id: int
    job_id: uuid.UUID
    url: str
    depth: int
    attempts: int  # its starts, this one included: this run's claim token (CLAIM_PAGES)


@dataclass(frozen=True)
class CountedPage:
    """What a worker learned about a page it counted."""

    http_status: int
    title: str | None
    counts: dict[str, int]
    elapsed_ms: int
    links: list[str] = field(default_factory=list)  # same-host URLs found, normalised

    @property
    def word_count(self) -> int:
        return sum(self.counts.values())


def claim_pages(
    engine: Engine, page_ids: Sequence[int], worker: str, task_id: str
) -> list[ClaimedPage]:
    """Mark pages running (and their job, if these are its first), in one transaction;
    return those this task (`task_id`) may run, in the order given.

    A page that already ended, whose job was cancelled, or that was sent again under
    another task id, is not run.
    """
    with engine.begin() as conn:
        # The job row is locked before the page rows, in the same order as a cancel, so a
        # claim and a cancel of the same job can never wait for each other.
        conn.execute(START_JOB, {"page_ids": page_ids})
        rows = conn.execute(
            CLAIM_PAGES, {"page_ids": page_ids, "worker": worker, "task": task_id}
        ).all()
    claimed = {row.id: ClaimedPage(*row) for row in rows}
    return [claimed[page_id] for page_id in page_ids if page_id in claimed]


def finish_pages(
    engine: Engine, counted: Sequence[tuple[ClaimedPage, CountedPage]], in_broker: int
) -> tuple[set[int], list[NewPage]]:
    """Store counted pages, their words and the pages they lead to, in one transaction.

    Returns the ids of the pages stored, and the pages to send to the broker now (after
    the commit, so a worker taking one finds its row). A page that had already ended (a
    task delivered twice), or that another run has claimed since, is left as it is.
    """
    ended: set[int] = set()
    to_send: list[NewPage] = []
    if not counted:
        return ended, to_send
    with engine.begin() as conn:
        # The pages of one message are of one job; any others take their turn, in the
        # order of their jobs' ids, so two finishers lock the jobs in the same order.
        by_job: dict[uuid.UUID, list[tuple[ClaimedPage, CountedPage]]] = {}
        for page, result in counted:
            by_job.setdefault(page.job_id, []).append((page, result))
        for job_id in sorted(by_job):
            stored, sent = _finish_pages_of_job(conn, job_id, by_job[job_id], in_broker)
            ended |= stored
            to_send += sent
    return ended, to_send


def _finish_pages_of_job(
    conn: Connection,
    job_id: uuid.UUID,
    counted: list[tuple[ClaimedPage, CountedPage]],
    in_broker: int,
) -> tuple[set[int], list[NewPage]]:
    """Store counted pages of one job (finish_pages); return those stored and the pages
    to send."""
    results = [result for _, result in counted]
    # A page's words are all counted, but only its most frequent are stored (reading/words.py).
    limit = get_settings().max_stored_words
    stored = [most_frequent(result.counts, limit) for result in results]
    kept = [(page, words) for (page, _), words in zip(counted, stored, strict=True)]
    job = conn.execute(
        FINISH_PAGES,
        {
            "job_id": job_id,
            "page_ids": [page.id for page, _ in counted],
            "http_statuses": [result.http_status for result in results],
            "titles": [result.title for result in results],
            "word_counts": [result.word_count for result in results],
            "unique_words": [len(result.counts) for result in results],
            "elapsed_ms": [result.elapsed_ms for result in results],
            "attempts": [page.attempts for page, _ in counted],
            "messages": [
                _not_stored_message(len(result.counts) - len(words), limit)
                for result, words in zip(results, stored, strict=True)
            ],
            "word_pages": " ".join(str(page.id) for page, words in kept for _ in words),
            "words": " ".join(word for _, words in kept for word in words),
            "counts": " ".join(str(n) for _, words in kept for n in words.values()),
        },
    ).one()
    # Each page's depth as its row says now: a shorter way to it may have been found
    # while it ran (_add_pages).
    depths = dict(zip(job.ended, job.ended_depths, strict=True))
    if not depths or job.status not in OPEN_JOB_STATUSES:
        return set(depths), []
    # The links of pages of one depth lead to pages of the next, found in page order.
    links_by_depth: dict[int, list[str]] = {}
    for page, result in counted:
        if depths.get(page.id, job.depth) < job.depth:
            links_by_depth.setdefault(depths[page.id], []).extend(result.links)
    for depth in sorted(links_by_depth):
        _add_pages(conn, job, links_by_depth[depth], depth + 1)
    return set(depths), _page_ended(conn, job, in_broker)


def _not_stored_message(left_out: int, limit: int) -> str | None:
    """Say how many of a counted page's distinct words were not stored (None: none)."""
    if not left_out:
        return None
    return (
        f"{left_out:,} of the page's distinct words were not stored: only the {limit:,} "
        "most frequent are kept (WORDCRAWL_MAX_STORED_WORDS); word_count and unique_words "
        "count them all"
    )


def fail_page(
    engine: Engine,
    page: ClaimedPage,
    error: PageError,
    elapsed_ms: int,
    in_broker: int,
) -> list[NewPage] | None:
    """Store why a page could not be counted; return the pages to send now in its place,
    or None if it had already ended or another run has claimed it since."""
    with engine.begin() as conn:
        job = lock_job(conn, page.job_id)  # the job's row first, as everywhere (FINISH_PAGES)
        ended = conn.execute(
            FAIL_PAGE,
            {
                "page_id": page.id,
                "attempt": page.attempts,
                "http_status": error.http_status,
                "error": error.code,
                "message": error.message,
                "elapsed_ms": elapsed_ms,
            },
        ).one_or_none()
        if ended is None:
            return None
        record_attempt(conn, page, error, "failed")
        if job.status not in OPEN_JOB_STATUSES:
            return []
        return _page_ended(conn, job, in_broker)


def _page_ended(conn: Connection, job: Row, in_broker: int) -> list[NewPage]:
    """After a page of an open job (its row locked) ended: release the job's next waiting
    pages, or end the job if none is left open; return the pages to send."""
    sent, waiting = conn.execute(OPEN_PAGES, {"job_id": job.id}).one()
    if waiting:
        return release_pages(conn, job.id, in_broker, sent)
    if not sent:
        _end_job(conn, job)
    return []


def record_attempt(conn: Connection, page: ClaimedPage, error: PageError, outcome: str) -> None:
    """Keep a failed attempt of a page in its history (page_attempts): what went wrong,
    on which worker, and whether Celery tries again (`retried`) or the page ended (`failed`).

    Only failures are kept: a counted page writes no history row (its `done` row says it).
    """
    conn.execute(
        RECORD_ATTEMPT,
        {
            "page_id": page.id,
            "attempt": page.attempts,
            "outcome": outcome,
            "error": error.code,
            "message": error.message,
            "http_status": error.http_status,
        },
    )


def retry_page(
    engine: Engine, page: ClaimedPage, error: PageError, new_task_id: str, max_tries: int
) -> tuple[bool, int]:
    """Record an attempt that failed for now (a timeout, a 503...) and give the page the
    task id it is sent again under, if it has been retried fewer than `max_tries` times
    and this run's claim holds (RETRY_PAGE). The page stays `running` meanwhile.

    Returns whether it was, and how many times it had been retried before.
    """
    with engine.begin() as conn:
        row = conn.execute(
            RETRY_PAGE,
            {
                "page_id": page.id,
                "attempt": page.attempts,
                "new_task_id": new_task_id,
                "max_tries": max_tries,
                "error": error.code,
                "message": error.message,
                "http_status": error.http_status,
            },
        ).one()
    return row.retried, row.tries


def starts_without_outcome(engine: Engine, page: ClaimedPage) -> int:
    """Count the starts of a page since its last recorded outcome, this one included.

    Every attempt that fails is recorded (page_attempts), so the starts after the last
    recorded one are starts whose worker died before it could say how it went.
    """
    with engine.connect() as conn:
        last = conn.execute(
            select(func.coalesce(func.max(PageAttempt.attempt), 0)).where(
                PageAttempt.page_id == page.id
            )
        ).scalar_one()
    return page.attempts - last


def lock_job(conn: Connection, job_id: uuid.UUID) -> Row:
    """Lock a job's row until the transaction ends; concurrent finishers take turns."""
    return conn.execute(LOCK_JOB, {"job_id": job_id}).one()


def _add_pages(conn: Connection, job: Row, urls: Iterable[str], depth: int) -> None:
    """Add the URLs a job has not seen yet as queued pages, up to its max_pages in all.

    They get no task id yet: `release_pages` sends them when the job has room. A URL the
    job has already found, but further from its seeds, gets this shorter depth
    (`_found_closer`).
    """
    candidates = list(dict.fromkeys(urls))  # unique, in the order the page lists them
    if not candidates:
        return
    seen = conn.execute(
        select(Page.url, Page.depth).where(Page.job_id == job.id, Page.url.in_(candidates))
    ).all()
    closer = [row.url for row in seen if row.depth > depth]
    if closer:
        _found_closer(conn, job, closer, depth)
    known = {row.url for row in seen}
    fresh = [url for url in candidates if url not in known]
    if not fresh:
        return  # most links of a page lead to pages found already: no need to count
    # Counting the job's pages reads all of them, so only now.
    found = conn.execute(
        select(func.count()).select_from(Page).where(Page.job_id == job.id)
    ).scalar_one()
    fresh = fresh[: max(0, job.max_pages - found)]
    if not fresh:
        return
    # ON CONFLICT: the unique (job_id, url) row has the last word, should the check above
    # ever miss a row (it cannot while the job's row is locked, but the index is the rule).
    conn.execute(
        insert(Page).on_conflict_do_nothing(index_elements=["job_id", "url"]),
        [{"job_id": job.id, "url": url, "depth": depth} for url in fresh],
    )


def _found_closer(conn: Connection, job: Row, urls: list[str], depth: int) -> None:
    """Give pages found again, closer to a seed, their shorter depth (the job's row locked).

    A crawl mostly ends pages level by level, but not always: a page whose worker died
    runs again later, and meanwhile the pages it links to may have been found by a longer
    way. A page not counted yet just takes the shorter depth (a running page's links are
    read with the depth its row has when it ends: FINISH_PAGES). A page counted already
    followed its links from too deep, or not at all: it is crawled again, its words
    replaced. So the pages a job reaches do not depend on the order its pages ended in.
    """
    closer = and_(Page.job_id == job.id, Page.url.in_(urls), Page.depth > depth)
    again = (
        conn.execute(
            update(Page)
            .where(closer, Page.status == "done")
            .values(status="queued", task_id=None, finished_at=None, word_count=None)
            .returning(Page.id)
        )
        .scalars()
        .all()
    )
    if again:
        conn.execute(delete(WordCount).where(WordCount.page_id.in_(again)))
    conn.execute(update(Page).where(closer).values(depth=depth))


def _end_job(conn: Connection, job: Row) -> None:
    """End an open job (its row locked) whose pages have all ended: done if one was counted."""
    counted = select(exists().where(Page.job_id == job.id, Page.status == "done"))
    conn.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            status="done" if conn.execute(counted).scalar() else "failed",
            # The clock now, not the transaction's start (now()): a transaction that
            # waited for the job's lock must not end the job before a page committed
            # meanwhile.
            finished_at=func.clock_timestamp(),
        )
    )
