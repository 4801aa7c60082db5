"""Where the bound is: what the dashboard says limits the crawl's speed right now.

A few simple rules over the numbers of activity.py, tried in the order of RULES; the
first that holds is the answer. Each rule's sentence is also shown on the dashboard, so a
student can check the answer against the figures beside it.
"""

from __future__ import annotations

from typing import Any

CPU_BOUND_PERCENT = 85  # a machine this busy has no CPU left for one more worker
NETWORK_CPU_PERCENT = 60  # below this, the CPUs mostly wait
FULL_SLOTS_PERCENT = 75  # this share of the page slots holding a page: the workers are full

# (kind, the rule in one sentence), in the order they are tried.
RULES: list[tuple[str, str]] = [
    ("no_workers", "No worker is online: nothing runs until one starts."),
    ("idle", "Idle: no page waits in the queue and none runs."),
    (
        "cpu",
        f"The CPU is the bound when the CPUs of a machine with workers are "
        f"{CPU_BOUND_PERCENT}% busy or more: more workers on that machine will not go faster.",
    ),
    (
        "site",
        "The site's politeness limit is the bound when more pages of one site run than "
        "WORDCRAWL_PER_HOST_CONCURRENCY lets fetch at once: the others wait for their turn, "
        "so more workers will not go faster.",
    ),
    (
        "network",
        f"The workers wait on the network when their CPUs are less than "
        f"{NETWORK_CPU_PERCENT}% busy while pages wait in the queue (or {FULL_SLOTS_PERCENT}% "
        f"or more of their page slots hold a page): more workers (or more pages in flight) "
        f"go faster.",
    ),
    (
        "keeping_up",
        "The workers keep up when no page waits in the queue: more workers would only wait.",
    ),
    (
        "between",
        f"Otherwise the workers are in between: pages wait and the CPUs are busy, not full "
        f"({NETWORK_CPU_PERCENT}% to {CPU_BOUND_PERCENT}%), so one more worker may still help, "
        f"a little.",
    ),
]


def where_is_the_bound(activity: dict[str, Any], per_host_concurrency: int) -> dict[str, str]:
    """Return the first rule that holds for these numbers: its kind, and what it means now."""
    online = [w for w in activity["workers"] if w["online"]]
    queue = activity["queue_length"] or 0  # None: the broker is away, counted as empty
    running = sum(w["running"] for w in online)
    machines = [m for m in activity["machines"] if set(m["workers"]) & {w["name"] for w in online}]
    busiest = max(machines, key=lambda m: m["busy_percent"], default=None)
    site = activity["busiest_site"]
    slots = sum(w["page_slots"] or 0 for w in online)

    if not online:
        return _answer("no_workers", "No worker is online: nothing runs until one starts.")
    if not queue and not running:
        return _answer("idle", "Idle: no page waits in the queue and none runs.")
    if busiest and busiest["busy_percent"] >= CPU_BOUND_PERCENT:
        return _answer(
            "cpu",
            f"The CPU is the bound: the {busiest['cpus']} CPUs of {busiest['host']} are "
            f"{busiest['busy_percent']:.0f}% busy, so more workers on this machine will not "
            f"go faster.",
        )
    if site and site["running"] > per_host_concurrency:
        return _answer(
            "site",
            f"The site's politeness limit is the bound: {site['running']} pages of "
            f"{site['site']} run, and only {per_host_concurrency} requests to one site may "
            f"run at once, so more workers will not go faster.",
        )
    cpu_low = machines and all(m["busy_percent"] < NETWORK_CPU_PERCENT for m in machines)
    full = slots and running * 100 >= slots * FULL_SLOTS_PERCENT
    if cpu_low and (queue or full):
        waiting = f"{queue} pages wait in the queue and " if queue else ""
        return _answer(
            "network",
            f"The workers wait on the network: {waiting}{running} of their {slots} page "
            f"slots hold a page while their CPUs are {busiest['busy_percent']:.0f}% busy, "
            f"so more workers (or more pages in flight) go faster.",
        )
    if not queue:
        return _answer(
            "keeping_up",
            "The workers keep up: no page waits in the queue, so more workers would only wait.",
        )
    cpu = f"{busiest['busy_percent']:.0f}% busy" if busiest else "not measured"
    return _answer(
        "between",
        f"In between: {queue} pages wait and the CPUs are {cpu}, not full, so one more "
        f"worker may still help, a little.",
    )


def _answer(kind: str, text: str) -> dict[str, str]:
    return {"kind": kind, "text": text}
