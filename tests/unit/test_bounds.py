"""Where the dashboard says the bound is (job_manager/bounds.py), and how it joins each
worker's pages with its census report (job_manager/activity.py)."""

from __future__ import annotations

from typing import Any

import pytest

from job_manager.activity import machines, worker_rows
from job_manager.bounds import RULES, where_is_the_bound

PER_HOST = 8


def report(cpu: float, busy: float, slots: int = 4, host: str = "lab1") -> dict[str, Any]:
    """A worker's census report, as its heartbeat writes it."""
    return {
        "pid": 1,
        "host": host,
        "cpus": 2,
        "page_slots": slots,
        "cpu_percent": cpu,
        "machine_busy_percent": busy,
    }


def activity(
    reports: dict[str, dict[str, Any]],
    running: dict[str, int],
    queue: int | None = 10,
    site: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The numbers /api/activity gives bounds.py: pages from the database, the census."""
    pages = {
        name: {"done": 5, "running": n, "pages_per_second": 1.0} for name, n in running.items()
    }
    return {
        "workers": worker_rows(pages, reports),
        "machines": machines(reports),
        "queue_length": queue,
        "busiest_site": site,
    }


def kind(numbers: dict[str, Any]) -> str:
    return where_is_the_bound(numbers, PER_HOST)["kind"]


def test_workers_whose_cpus_add_up_to_the_machine_are_cpu_bound():
    numbers = activity({"w1": report(95, 97), "w2": report(92, 97)}, {"w1": 4, "w2": 4})

    answer = where_is_the_bound(numbers, PER_HOST)

    assert answer["kind"] == "cpu"
    assert answer["text"] == (
        "The CPU is the bound: the 2 CPUs of lab1 are 97% busy, 94% by its workers, "
        "so more workers on this machine will not go faster."
    )


def test_full_slots_with_idle_cpus_wait_on_the_network():
    numbers = activity(
        {"w1": report(8, 15, slots=1), "w2": report(7, 15, slots=1)}, {"w1": 1, "w2": 1}
    )

    answer = where_is_the_bound(numbers, PER_HOST)

    assert answer["kind"] == "network"
    assert "10 pages wait in the queue and 2 of their 2 page slots hold a page" in answer["text"]
    assert answer["text"].endswith("more workers (or more pages in flight) go faster.")


def test_more_pages_of_one_site_than_its_limit_wait_on_the_sites_politeness():
    site = {"site": "127.0.0.1:8002", "running": 12}
    numbers = activity(
        {"w1": report(10, 20, slots=6), "w2": report(10, 20, slots=6)},
        {"w1": 6, "w2": 6},
        site=site,
    )

    answer = where_is_the_bound(numbers, PER_HOST)

    assert answer["kind"] == "site"
    assert "12 pages of 127.0.0.1:8002 run, and only 8 requests" in answer["text"]


@pytest.mark.parametrize(
    ("reports", "running", "queue", "expected"),
    [
        ({}, {}, 5, "no_workers"),
        ({"w1": report(2, 5)}, {}, 0, "idle"),
        ({"w1": report(2, 5)}, {"w1": 0}, None, "idle"),  # broker away: no queue seen
        # A worker that ended pages but is gone from the census is not online.
        ({}, {"w1": 3}, 5, "no_workers"),
        ({"w1": report(30, 40, slots=4)}, {"w1": 1}, 0, "keeping_up"),
        ({"w1": report(150, 80, slots=4)}, {"w1": 4}, 9, "between"),  # busy, not full
        # Between two pages a slot is free a moment: pages waiting still say "network".
        ({"w1": report(20, 30, slots=2)}, {"w1": 1}, 9, "network"),
        ({"w1": report(10, 20, slots=4)}, {"w1": 4}, 0, "network"),  # full, nothing waits
    ],
)
def test_the_other_rules(reports, running, queue, expected):
    assert kind(activity(reports, running, queue)) == expected


def test_a_machine_busy_with_other_processes_is_cpu_bound_too():
    # PostgreSQL and the manager share the machine: the machine's own reading counts.
    assert kind(activity({"w1": report(60, 90), "w2": report(55, 90)}, {"w1": 4, "w2": 4})) == "cpu"


def test_workers_that_wait_on_a_machine_busy_with_other_work_still_wait_on_the_network():
    # Another program keeps the CPUs busy; the workers use 3% each and pages wait for them.
    numbers = activity(
        {"w1": report(3, 98, slots=1), "w2": report(3, 98, slots=1)}, {"w1": 1, "w2": 1}
    )

    assert kind(numbers) == "network"


def test_every_answer_is_one_of_the_rules_the_page_explains():
    kinds = [k for k, _ in RULES]
    assert len(set(kinds)) == len(kinds)
    assert {"cpu", "network"} <= set(kinds)


def test_a_workers_row_has_its_cpu_as_a_share_of_one_cpu_and_of_the_machine():
    pages = {"w1": {"done": 40, "running": 3, "pages_per_second": 2.5}, "old": {"done": 2}}

    rows = worker_rows(pages, {"w1": report(150, 90), "w2": report(10, 90, host="lab2")})

    assert [r["name"] for r in rows] == ["old", "w1", "w2"]
    old, w1, w2 = rows
    assert w1 == {
        "name": "w1",
        "online": True,
        "done": 40,
        "running": 3,
        "pages_per_second": 2.5,
        "host": "lab1",
        "cpus": 2,
        "page_slots": 4,
        "cpu_percent": 150,
        "cpu_machine_percent": 75.0,
    }
    assert old["online"] is False and old["cpu_percent"] is None and old["running"] == 0
    assert w2["done"] == 0 and w2["pages_per_second"] == 0.0


def test_machines_add_up_their_workers_cpu():
    found = machines(
        {"w1": report(90, 95), "w2": report(80, 96), "w3": report(20, 30, host="lab2"), "x": {}}
    )

    assert found == [
        {
            "host": "lab1",
            "cpus": 2,
            "workers": ["w1", "w2"],
            "workers_cpu_percent": 85.0,
            "busy_percent": 96,
        },
        {
            "host": "lab2",
            "cpus": 2,
            "workers": ["w3"],
            "workers_cpu_percent": 10.0,
            "busy_percent": 30,
        },
    ]
