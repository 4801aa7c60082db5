"""Compare a schedule's runs: which they are, and the words that rose or fell most.

Reading only, for the schedule's API (api/schedules.py) and page (web/schedule_pages.py):
its runs are ordinary jobs whose schedule_id names it (docs/reference.md, "Schedules").
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, literal_column, select, union_all
from sqlalchemy.orm import Session

from job_tasks.reading.words import english_stopwords
from job_tasks.storing.models import Job, Page, WordCount


def run_ids(
    session: Session, schedule_id: uuid.UUID, limit: int, status: str | None = None
) -> list[uuid.UUID]:
    """Return the ids of a schedule's runs (those with this status, if given), newest first."""
    query = select(Job.id).where(Job.schedule_id == schedule_id)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit)))


def word_changes(
    session: Session, from_job: uuid.UUID, to_job: uuid.UUID, limit: int, stopwords: bool
) -> list[dict[str, Any]]:
    """Return the words whose count changed most from one job to another.

    A word counted in only one of them counts 0 in the other; the largest absolute change
    comes first, ties by word.
    """
    counts = [
        select(
            WordCount.word.label("word"),
            (WordCount.count if job == from_job else literal_column("0")).label("from_count"),
            (WordCount.count if job == to_job else literal_column("0")).label("to_count"),
        )
        .join(Page, Page.id == WordCount.page_id)
        .where(Page.job_id == job, Page.status == "done")
        for job in (from_job, to_job)
    ]
    both = union_all(*counts).subquery()
    from_count = func.sum(both.c.from_count)
    to_count = func.sum(both.c.to_count)
    change = to_count - from_count
    query = (
        select(both.c.word, from_count, to_count, change)
        .group_by(both.c.word)
        .having(change != 0)
        .order_by(func.abs(change).desc(), both.c.word.collate("C"))
        .limit(limit)
    )
    if not stopwords:
        query = query.where(both.c.word.not_in(sorted(english_stopwords())))
    return [
        {"word": word, "from_count": int(a), "to_count": int(b), "change": int(c)}
        for word, a, b, c in session.execute(query)
    ]
