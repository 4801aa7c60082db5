"""`wordcrawl bench --stack`: one crawl through the whole default stack, as a user makes it.

It starts what `wordcrawl up` starts (manager, Flower, beat, two workers) with wordcrawl's
defaults, in a Redis database number and a database of its own, and serves the demo site
(16 KB pages, 100 ms latency, ten links down from each page: 1,111 pages within depth 3).
Then it submits a depth-3 crawl of at most 1,000 pages through the JSON API, as a student
would, with the per-host limit raised to 64 (the only setting changed), and reports:

- pages/s from the crawl's first page queued to its last page done;
- how long a one-URL job submitted while the crawl runs takes from submission to done
  (fair sharing: it should not wait behind the crawl's pages);
- the peak memory of the stack (manager, Flower and the workers, each with its child
  processes, summed) and its memory over time. With --pages above 1,000 the crawl is
  several jobs of 1,000 pages (the API's limit per job), all at once: start, middle and
  end then show whether the memory stays flat.

Each page counted is checked against the words the demo site served.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from job_tasks.settings import Settings

from ..client import ApiClient
from ..demo_site import DemoSite
from .isolated import (
    Counted,
    Place,
    bench_environ,
    counted_pages,
    isolated_servers,
    open_jobs,
    pages_done,
    running_stack,
    stack_processes,
    tree_rss_mb,
)
from .sites import serve_sites
from .speed import _Sampler, wait_until

PAGES_PER_JOB = 1000  # the API's most pages per job (WORDCRAWL_MAX_PAGES_PER_JOB's default)
FANOUT = 10  # links down from each demo page: 1 + 10 + 100 + 1,000 pages within depth 3
OPEN = ("queued", "running")


@dataclass(frozen=True)
class StackPlan:
    """What to crawl through the stack."""

    pages: int = 1000  # in jobs of at most PAGES_PER_JOB, submitted together
    depth: int = 3
    latency_ms: int = 100
    per_host_concurrency: int = 64
    workers: int = 2
    timeout: float = 600.0  # seconds the crawl may take
    keep: bool = False

    def demo_site(self) -> DemoSite:
        """The site: deep and wide enough that one job reaches its max_pages."""
        reachable = sum(FANOUT**level for level in range(self.depth + 1))
        return DemoSite(pages=reachable, fanout=FANOUT, latency_ms=self.latency_ms)

    def job_sizes(self) -> list[int]:
        full, rest = divmod(self.pages, PAGES_PER_JOB)
        return [PAGES_PER_JOB] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class StackRun:
    """The figures of one crawl through the whole stack."""

    pages: int
    jobs: int
    workers: int
    latency_ms: int
    per_host_concurrency: int
    done: int  # pages counted
    words_ok: int  # pages whose stored words are exactly the words the site served
    seconds: float
    pages_per_second: float
    probe_seconds: float | None  # a one-URL job's time from submission to done, meanwhile
    peak_rss_mb: float
    start_rss_mb: float
    middle_rss_mb: float
    end_rss_mb: float
    rss_mb_over_time: list[tuple[float, float]]  # (seconds since the start, MB), each second
    # Each piece's memory (with its child processes) when the crawl began and ended: which
    # one grows, if the total does.
    rss_mb_by_piece: dict[str, tuple[float, float]]

    @property
    def ok(self) -> bool:
        return self.done == self.pages == self.words_ok

    def lines(self) -> list[str]:
        probe = "-" if self.probe_seconds is None else f"{self.probe_seconds:.2f} s"
        over_time = ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in _each(self.rss_mb_over_time, 12))
        return [
            f"pages/s     {self.pages_per_second:.1f}  ({self.done} of {self.pages} pages "
            f"counted in {self.seconds:.1f} s, first queued to last done; words right on "
            f"{self.words_ok})",
            f"probe job   {probe}  (one URL, submitted while the crawl ran; submission to done)",
            f"stack RSS   peak {self.peak_rss_mb:.0f} MB; start {self.start_rss_mb:.0f}, "
            f"middle {self.middle_rss_mb:.0f}, end {self.end_rss_mb:.0f} MB "
            f"(manager, Flower, {self.workers} workers, with their processes)",
            f"RSS over time (s: MB)  {over_time}",
            "RSS by piece (MB)  "
            + ", ".join(
                f"{name} {a:.0f} -> {b:.0f}" for name, (a, b) in self.rss_mb_by_piece.items()
            ),
            f"counted     {'yes' if self.ok else 'NO'}",
        ]


def run_stack_bench(
    settings: Settings, plan: StackPlan, echo: Callable[[str], None] = print
) -> StackRun:
    """Serve the demo site, start the stack, crawl through it; return the figures."""
    site = plan.demo_site()
    with (
        isolated_servers(settings, plan.keep) as place,
        serve_sites(site, 1, place.work_dir / "demo-site.log") as (site_url,),
    ):
        echo(describe(plan, site_url, place))
        return crawl_through_stack(place, site_url, site, plan)


def describe(plan: StackPlan, site_url: str, place: Place) -> str:
    return (
        f"whole stack: {plan.pages} pages of {site_url} (depth {plan.depth}, "
        f"{plan.latency_ms} ms latency) in {len(plan.job_sizes())} job(s) through the "
        f"API; {plan.workers} workers, wordcrawl's defaults but "
        f"WORDCRAWL_PER_HOST_CONCURRENCY={plan.per_host_concurrency}; {place.describe()}"
    )


def crawl_through_stack(place: Place, site_url: str, site: DemoSite, plan: StackPlan) -> StackRun:
    """Start the stack, submit the crawl and the probe, wait for them; stop the stack."""
    environ = bench_environ(
        place, [site_url], {"WORDCRAWL_PER_HOST_CONCURRENCY": str(plan.per_host_concurrency)}
    )
    with running_stack(place, environ, plan.workers) as stack:
        api = ApiClient(stack.manager_url)
        pieces = stack_processes(stack)
        start_by_piece = {name: tree_rss_mb(root) for name, root in pieces.items()}
        sampler = _Sampler(list(pieces.values()))
        began = time.monotonic()
        job_ids = [api.submit([site_url], plan.depth, size)["id"] for size in plan.job_sizes()]
        # Once the crawl is busy (a tenth of its pages done), one more user's small job.
        busy = max(1, plan.pages // 10)
        wait_until(
            lambda: pages_done(place.database_url, job_ids) >= busy,
            plan.timeout,
            "the crawl never got busy",
        )
        probe_seconds = _probe(api, f"{site_url}page/{site.pages - 1}", plan.timeout)
        wait_until(
            lambda: open_jobs(place.database_url, job_ids) == 0,
            plan.timeout - (time.monotonic() - began),
            "the crawl did not end in time",
        )
        sampler.stop()
        end_by_piece = {name: tree_rss_mb(root) for name, root in pieces.items()}
    counted = counted_pages(place.database_url, job_ids, site)
    by_piece = {name: (start_by_piece[name], end_by_piece[name]) for name in pieces}
    return _run(plan, counted, probe_seconds, sampler, by_piece)


def _probe(api: ApiClient, url: str, timeout: float) -> float:
    """Submit a one-URL job; return its seconds from submission to done (as its user sees)."""
    submitted = time.monotonic()
    job_id = api.submit([url], 0, 1)["id"]
    wait_until(
        lambda: api.job(job_id)["status"] not in OPEN, timeout, "the probe job did not end in time"
    )
    return round(time.monotonic() - submitted, 2)


def _run(
    plan: StackPlan,
    counted: Counted,
    probe_seconds: float,
    sampler: _Sampler,
    by_piece: dict[str, tuple[float, float]],
) -> StackRun:
    over_time = [(round(t, 1), round(rss / 2**20, 1)) for t, rss in sampler.rss_over_time]
    middle = over_time[len(over_time) // 2][1] if over_time else 0.0
    return StackRun(
        pages=counted.pages,
        jobs=len(plan.job_sizes()),
        workers=plan.workers,
        latency_ms=plan.latency_ms,
        per_host_concurrency=plan.per_host_concurrency,
        done=counted.done,
        words_ok=counted.words_ok,
        seconds=counted.seconds,
        pages_per_second=counted.pages_per_second,
        probe_seconds=probe_seconds,
        peak_rss_mb=round(sampler.peak_rss / 2**20, 1),
        start_rss_mb=round(sampler.first_rss / 2**20, 1),
        middle_rss_mb=middle,
        end_rss_mb=round(sampler.last_rss / 2**20, 1),
        rss_mb_over_time=over_time,
        rss_mb_by_piece=by_piece,
    )


def _each(points: list[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most `most` of the points, evenly spread, the first and the last included."""
    if len(points) <= most:
        return points
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def write_json(run: object, path: Path) -> None:
    """Write one benchmark's figures (a dataclass) as a JSON object."""
    path.write_text(json.dumps(asdict(run), indent=2) + "\n")
