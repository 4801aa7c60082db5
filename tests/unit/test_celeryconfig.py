"""Celery's settings derived from wordcrawl's (job_tasks/celeryconfig.py)."""

import pytest

from job_tasks.celeryconfig import celery_config
from job_tasks.settings import Settings


@pytest.mark.parametrize(
    ("hard", "soft"), [(120, 110), (30, 20), (20, 10), (12, 6), (6, 3), (2, 1), (1, 1)]
)
def test_the_soft_time_limit_leaves_short_limits_room_to_work(hard, soft):
    config = celery_config(Settings(task_time_limit=hard))

    assert config["task_time_limit"] == hard
    assert config["task_soft_time_limit"] == soft


@pytest.mark.parametrize(("hard", "interval"), [(120, 10), (10, 3), (6, 1), (1, 1)])
def test_a_dead_workers_messages_are_looked_for_soon_after_their_visibility_timeout(hard, interval):
    options = celery_config(Settings(task_time_limit=hard))["broker_transport_options"]

    assert options["visibility_timeout"] == 3 * hard
    # Kombu's sweep runs every interval x throttle seconds.
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] == interval


def test_a_group_of_pages_comes_back_as_soon_as_a_page_alone():
    # A group's pages are crawled side by side, within one page's time limit.
    alone = celery_config(Settings(task_time_limit=120))["broker_transport_options"]
    grouped = celery_config(Settings(task_time_limit=120, max_pages_per_task=20))

    assert grouped["broker_transport_options"] == alone
    assert grouped["task_time_limit"] == 120
