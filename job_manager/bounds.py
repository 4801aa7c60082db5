"""Where the bound is: what the dashboard says limits the crawl's speed right now.

A few simple rules over the numbers of activity.py, tried in the order of RULES; the
first that holds is the answer. Each rule's sentence is also shown on the dashboard, so a
student can check the answer against the figures beside it.

The CPU figures are a machine's (every process on it, over its last seconds) and its
workers' own share of it: a machine kept busy by something else (a test suite, a video
call) does not make workers that mostly wait on the network CPU-bound.
"""

from __future__ import annotations

from typing import Any

# A machine this busy has no CPU left for one more worker, when its workers use at least
# WORKERS_CPU_PERCENT of it (on a machine that runs the whole stack, PostgreSQL, Redis,
# Flower and the manager take much of the rest).
CPU_BOUND_PERCENT = 85
WORKERS_CPU_PERCENT = 40
FULL_SLOTS_PERCENT = 75  # this share of the page slots holding a page: the workers are full

# (kind, the rule in one sentence), in the order they are tried.
RULES: list[tuple[str, str]] = [
    ("no_workers", "No worker is online: nothing runs until one starts."),
    ("idle", "Idle: no page waits in the queue and none runs."),
    (
        "cpu",
        f"The CPU is the bound when a machine's CPUs are {CPU_BOUND_PERCENT}% busy or more, "
        f"its workers using {WORKERS_CPU_PERCENT}% of them or more: more workers on that "
        f"machine will not go faster.",
    ),
    (
        "site",
        "The site's politeness limit is the bound when more pages of one site run than "
        "WORDCRAWL_PER_HOST_CONCURRENCY lets fetch at once: the others wait for their turn, "
        "so more workers will not go faster.",
    ),
    (
        "network",
        f"The workers wait on the network when they use less than {WORKERS_CPU_PERCENT}% of "
        f"their machines' CPUs while pages wait in the queue (or {FULL_SLOTS_PERCENT}% or "
        f"more of their page slots hold a page): more workers (or more pages in flight) go "
        f"faster.",
    ),
    (
        "keeping_up",
        "The workers keep up when no page waits in the queue: more workers would only wait.",
    ),
    (
        "between",
        f"Otherwise the workers are in between: pages wait, the workers use "
        f"{WORKERS_CPU_PERCENT}% of the CPUs or more, and the machine is not full: one more "
        f"worker may still help, a little.",
    ),
]


def where_is_the_bound(activity: dict[str, Any], per_host_concurrency: int) -> dict[str, str]:
    """Return the first rule that holds for these numbers: its kind, and what it means now."""
    online = [w for w in activity["workers"] if w["online"]]
    names = {w["name"] for w in online}
    queue = activity["queue_length"] or 0  # None: the broker is away, counted as empty
    running = sum(w["running"] for w in online)
    slots = sum(w["page_slots"] or 0 for w in online)
    machines = [m for m in activity["machines"] if names & set(m["workers"])]
    busiest = max(machines, key=lambda m: m["workers_cpu_percent"], default=None)
    full_cpu = [
        m
        for m in machines
        if m["busy_percent"] >= CPU_BOUND_PERCENT
        and m["workers_cpu_percent"] >= WORKERS_CPU_PERCENT
    ]
    site = activity["busiest_site"]

    if not online:
        return _answer("no_workers", "No worker is online: nothing runs until one starts.")
    if not queue and not running:
        return _answer("idle", "Idle: no page waits in the queue and none runs.")
    if full_cpu:
        m = full_cpu[0]
        return _answer(
            "cpu",
            f"The CPU is the bound: the {m['cpus']} CPUs of {m['host']} are "
            f"{m['busy_percent']:.0f}% busy, {m['workers_cpu_percent']:.0f}% by its workers, "
            f"so more workers on this machine will not go faster.",
        )
    if site and site["running"] > per_host_concurrency:
        return _answer(
            "site",
            f"The site's politeness limit is the bound: {site['running']} pages of "
            f"{site['site']} run, and only {per_host_concurrency} requests to one site may "
            f"run at once, so more workers will not go faster.",
        )
    workers_wait = busiest and busiest["workers_cpu_percent"] < WORKERS_CPU_PERCENT
    full = slots and running * 100 >= slots * FULL_SLOTS_PERCENT
    if workers_wait and (queue or full):
        waiting = f"{queue} pages wait in the queue and " if queue else ""
        return _answer(
            "network",
            f"The workers wait on the network: {waiting}{running} of their {slots} page "
            f"slots hold a page while they use {busiest['workers_cpu_percent']:.0f}% of "
            f"their machine's CPUs, so more workers (or more pages in flight) go faster.",
        )
    if not queue:
        return _answer(
            "keeping_up",
            "The workers keep up: no page waits in the queue, so more workers would only wait.",
        )
    cpu = f"use {busiest['workers_cpu_percent']:.0f}%" if busiest else "have no CPU figures"
    return _answer(
        "between",
        f"In between: {queue} pages wait and the workers {cpu} of the CPUs, the machine not "
        f"full, so one more worker may still help, a little.",
    )


def _answer(kind: str, text: str) -> dict[str, str]:
    return {"kind": kind, "text": text}
