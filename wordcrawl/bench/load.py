"""Put a running manager under load, and print what it took: `wordcrawl load`.

Submits jobs at a steady rate for a while (open loop: a slow answer does not slow the
sending), then waits for every accepted job to end. It prints requests per second, the
latency of POST /api/jobs (p50, p95, p99, max), the answers by status, and whether any job
was lost. Latency runs from the moment a request was due, so time spent waiting for a free
sender counts too (no "coordinated omission"). The sender is plain http.client with one
kept-alive connection per thread: on one machine the load generator shares the CPUs with
the manager, and `requests` takes several times http.client's CPU per request.

A 5xx answer or an accepted job that never ends is a failure (exit status 1); 429 answers
are the manager's rate limit doing its job (raise WORDCRAWL_SUBMISSIONS_PER_MINUTE on the
manager to load it harder).

With `--get PATH` (once or more) it reads instead: GET requests to those paths in turn
(e.g. /api/health and /api/activity, which thirty open dashboards poll), at the same
steady rate, and prints the same latency figures; a 5xx answer, no answer or an answer
that is not JSON is a failure.

A benchmark, not a test: only aim it at a manager you run, on loopback or your own lab.
"""

from __future__ import annotations

import http.client
import json
import select
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

import requests

ENDED = ("done", "failed", "cancelled")


@dataclass
class LoadReport:
    """What happened during a load run."""

    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    accepted: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    reads: bool = False  # GET requests (--get), not submissions
    not_json: int = 0  # answers to GET requests whose body was not JSON

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.connection_errors

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def ok(self) -> bool:
        return not (
            self.server_errors or self.connection_errors or self.unfinished or self.not_json
        )

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        return cuts[min(98, max(0, round(fraction * 100) - 1))]

    def lines(self) -> list[str]:
        """The figures, one per line, for people (and for a notebook to parse)."""
        rate = self.requests / self.seconds if self.seconds else 0.0
        answers = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return [
            f"requests        {self.requests} in {self.seconds:.1f} s ({rate:.1f}/s)",
            f"latency p50     {self.percentile(0.50):.1f} ms",
            f"latency p95     {self.percentile(0.95):.1f} ms",
            f"latency p99     {self.percentile(0.99):.1f} ms",
            f"latency max     {max(self.latencies_ms, default=0.0):.1f} ms",
            f"answers         {answers or 'none'}",
            f"server errors   {self.server_errors} (5xx), {self.connection_errors} unanswered",
            f"not JSON        {self.not_json}"
            if self.reads
            else f"jobs accepted   {len(self.accepted)}, "
            f"ended {len(self.accepted) - len(self.unfinished)}, "
            f"not ended {len(self.unfinished)}",
        ]


def run_load(
    api_url: str,
    seeds: list[str],
    seconds: float,
    rate: float,
    wait_seconds: float = 300.0,
    progress: Callable[[str], None] = lambda line: None,
) -> LoadReport:
    """Submit one job of `seeds` every 1/rate seconds for `seconds`; wait for them to end."""
    api_url = api_url.rstrip("/")
    report = LoadReport()
    lock = threading.Lock()
    local = threading.local()
    body = json.dumps({"urls": seeds, "depth": 0}).encode()
    target = urlsplit(api_url)

    def submit(due: float) -> None:
        try:
            status, answer = _post_json(local, target, "/api/jobs", body)
        except (OSError, http.client.HTTPException):
            with lock:
                report.connection_errors += 1
            return
        elapsed_ms = (time.perf_counter() - due) * 1000
        with lock:
            report.latencies_ms.append(elapsed_ms)
            report.statuses[status] += 1
            if status == 202:
                report.accepted.append(json.loads(answer)["id"])

    report.seconds = _at_steady_rate(seconds, rate, lambda n, due: (submit, due))
    progress(f"sent {report.requests} submissions; waiting for {len(report.accepted)} jobs")
    report.unfinished = _wait_for_jobs(api_url, report.accepted, wait_seconds)
    return report


def run_reads(api_url: str, paths: list[str], seconds: float, rate: float) -> LoadReport:
    """GET each of `paths` in turn, one request every 1/rate seconds for `seconds`."""
    report = LoadReport(reads=True)
    lock = threading.Lock()
    local = threading.local()
    target = urlsplit(api_url.rstrip("/"))

    def read(path: str, due: float) -> None:
        try:
            status, answer = _request(local, target, "GET", path)
        except (OSError, http.client.HTTPException):
            with lock:
                report.connection_errors += 1
            return
        elapsed_ms = (time.perf_counter() - due) * 1000
        try:
            json.loads(answer)
            readable = True
        except ValueError:
            readable = False
        with lock:
            report.latencies_ms.append(elapsed_ms)
            report.statuses[status] += 1
            report.not_json += not readable

    report.seconds = _at_steady_rate(
        seconds, rate, lambda n, due: (read, paths[n % len(paths)], due)
    )
    return report


def _at_steady_rate(seconds: float, rate: float, call: Callable[[int, float], tuple]) -> float:
    """Start call(n, due) every 1/rate seconds for `seconds` on 32 threads; return the time.

    Open loop: each request leaves at its time, however long earlier ones take.
    """
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n in range(max(1, round(seconds * rate))):
            due = began + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            function, *args = call(n, due)
            pool.submit(function, *args)
    return time.perf_counter() - began


def _post_json(
    local: threading.local, target: SplitResult, path: str, body: bytes
) -> tuple[int, bytes]:
    """POST a JSON body on this thread's kept-alive connection; return status and body."""
    return _request(local, target, "POST", path, body, {"Content-Type": "application/json"})


def _request(
    local: threading.local,
    target: SplitResult,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Send a request on this thread's kept-alive connection; return status and body."""
    conn = getattr(local, "conn", None)
    if conn is None:
        kind = (
            http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        )
        conn = local.conn = kind(target.hostname, target.port, timeout=30)
    elif conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
        conn.close()  # the server closed it while idle (keep-alive timeout): reconnect
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        raise


def _wait_for_jobs(api_url: str, job_ids: list[str], wait_seconds: float) -> list[str]:
    """Poll until every job has ended; return those that had not by the deadline."""
    deadline = time.monotonic() + wait_seconds
    waiting = list(job_ids)
    with requests.Session() as session:
        while waiting and time.monotonic() < deadline:
            still = []
            for job_id in waiting:
                try:
                    job = session.get(f"{api_url}/api/jobs/{job_id}", timeout=10).json()
                except (requests.RequestException, ValueError):
                    still.append(job_id)
                    continue
                if job.get("status") not in ENDED:
                    still.append(job_id)
            waiting = still
            if waiting:
                time.sleep(1)
    return waiting
