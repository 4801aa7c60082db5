"""Grouping the pages sent to the broker (job_tasks/storing/pages.py: task_ids_for)."""

import pytest

from job_tasks.storing.pages import task_ids_for


@pytest.mark.parametrize(
    ("count", "per_task", "sizes"),
    [(12, 5, [5, 5, 2]), (3, 1, [1, 1, 1]), (4, 10, [4]), (10, 5, [5, 5]), (0, 5, [])],
)
def test_each_run_of_pages_shares_one_task_id(count, per_task, sizes):
    ids = task_ids_for(count, per_task)

    assert len(ids) == count
    runs = [ids.count(task_id) for task_id in dict.fromkeys(ids)]  # in order of appearance
    assert runs == sizes
    # A group's pages are next to each other: one message each, in the order found.
    assert ids == sorted(ids, key=ids.index)
