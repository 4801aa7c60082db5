"""Grouping the pages sent to the broker (job_tasks/storing/release.py: messages_for and
task_ids_for)."""

import pytest

from job_tasks.settings import Settings
from job_tasks.storing.release import messages_for, task_ids_for


@pytest.mark.parametrize(
    ("count", "free", "sizes"),
    [
        (3, 16, [1, 1, 1]),  # no more pages than free messages: each page alone
        (16, 16, [1] * 16),
        (20, 16, [2, 2, 2, 2] + [1] * 12),  # a backlog: spread over the free messages
        (24, 3, [8, 8, 8]),
        (1, 1, [1]),
        (0, 5, []),
    ],
)
def test_pages_travel_alone_unless_more_wait_than_messages_are_free(count, free, sizes):
    ids = task_ids_for(count, messages_for(count, free, 8, queue_waiting=False))

    assert len(ids) == count
    sizes_found = [ids.count(task_id) for task_id in dict.fromkeys(ids)]  # in order
    assert sizes_found == sizes
    assert len(set(ids)) <= free  # never more messages than the job has free


@pytest.mark.parametrize(
    ("count", "free", "sizes"),
    [
        (1, 16, [1]),  # a lone page is one task, however busy the workers are
        (3, 16, [3]),
        (10, 16, [5, 5]),  # as few messages as groups of 8 allow, evenly filled
        (16, 16, [8, 8]),
        (20, 16, [2, 2, 2, 2] + [1] * 12),  # more than free messages: as when idle
    ],
)
def test_pages_share_messages_while_messages_wait_for_a_worker(count, free, sizes):
    ids = task_ids_for(count, messages_for(count, free, 8, queue_waiting=True))

    assert [ids.count(task_id) for task_id in dict.fromkeys(ids)] == sizes


@pytest.mark.parametrize(
    ("max_pages", "per_host", "group"), [(8, 64, 8), (8, 4, 4), (1, 64, 1), (20, 8, 8)]
)
def test_a_group_is_never_larger_than_one_site_takes_at_once(max_pages, per_host, group):
    settings = Settings(max_pages_per_task=max_pages, per_host_concurrency=per_host)

    assert settings.group_size == group
