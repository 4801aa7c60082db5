"""The `wordcrawl` command line: start the pieces, submit jobs, read results.

Starting commands (up, serve, worker, beat, demo-site) run the real servers; the job commands
(submit, status, words) are clients of the manager's JSON API, like any other program.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from job_tasks.settings import Settings, SettingsError, get_settings

from .client import ApiClient, ApiClientError

OPEN_STATUSES = ("queued", "running")


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as err:
        raise click.UsageError(str(err)) from err


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """wordcrawl: count the words of web pages with a Celery task queue."""


@main.command()
@click.option(
    "--workers",
    "-w",
    default=2,
    show_default=True,
    type=click.IntRange(1, 32),
    help="How many Celery workers to start.",
)
@click.option(
    "--port",
    "-p",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the web manager.",
)
@click.option(
    "--demo-port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Port of the demo site [default: 8001 if free, else any free port].",
)
def up(workers: int, port: int, demo_port: int) -> None:
    """Start the whole stack on this machine (no Docker); Ctrl-C stops it all."""
    from .local.stack import Stack

    Stack(_settings(), workers=workers, port=port, demo_port=demo_port).run()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--processes",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes.",
)
def serve(host: str, port: int, processes: int) -> None:
    """Run the manager (web form and JSON API) with gunicorn."""
    settings = _settings()  # fail here, readably, on a bad variable
    try:
        settings.refuse_placeholder_secrets()  # create_app checks too: gunicorn would say less
    except SettingsError as err:
        raise click.UsageError(str(err)) from err
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(processes),
        "--threads",
        "4",
        "--access-logfile",
        "-",
        "job_manager:create_app()",
    ]
    os.execv(argv[0], argv)


@main.command()
@click.option(
    "--name",
    "-n",
    default="worker",
    show_default=True,
    help="Node name (NAME@host); every worker needs its own.",
)
@click.option(
    "--queues",
    "-Q",
    default="",
    help="Comma-separated queues to take tasks from: crawl, housekeeping (default: both).",
)
def worker(name: str, queues: str) -> None:
    """Run one Celery worker."""
    from job_tasks.celeryconfig import QUEUES
    from job_worker import worker_command

    chosen = [queue.strip() for queue in queues.split(",") if queue.strip()]
    unknown = sorted(set(chosen) - set(QUEUES))
    if unknown:
        raise click.BadParameter(
            f"unknown queue {unknown[0]!r}; the queues are {', '.join(QUEUES)}",
            param_hint="--queues",
        )
    argv = worker_command(name, _settings(), queues=chosen)
    os.execv(argv[0], argv)


@main.command()
def beat() -> None:
    """Run the scheduler that starts scheduled runs (one per deployment)."""
    from job_worker import beat_command

    _settings()  # fail here, readably, on a bad variable
    argv = beat_command()
    os.execv(argv[0], argv)


@main.command("init-db")
def init_db_command() -> None:
    """Create or migrate the database tables (wordcrawl's and Celery's); safe to run again."""
    from job_tasks import app
    from job_tasks.storing.db import create_database_if_missing
    from job_tasks.storing.schema import init_db

    settings = _settings()
    if create_database_if_missing(settings.database_url):
        click.echo("created the database")
    init_db(settings.database_url, app)
    click.echo("tables ready")


@main.command()
@click.option(
    "--older-than",
    "days",
    required=True,
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Remove the jobs that ended more than DAYS days ago (0: every ended job).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option(
    "--batch-size",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Pages removed per transaction.",
)
def prune(days: int, dry_run: bool, batch_size: int) -> None:
    """Remove old ended jobs with their pages, word counts and Celery results.

    Jobs still queued or running, and their pages, are never touched; schedules stay.
    """
    from sqlalchemy.exc import OperationalError

    from job_tasks.storing.db import get_engine
    from job_tasks.storing.prune import prune as prune_jobs

    engine = get_engine(_settings().database_url)
    try:
        report = prune_jobs(engine, days, dry_run=dry_run, batch_size=batch_size)
    except OperationalError as err:
        raise click.ClickException(f"the database did not answer: {err.orig}") from err
    if dry_run:
        click.echo(f"would remove {report.summary()} (dry run: nothing removed)")
    else:
        click.echo(f"removed {report.summary()} in {report.transactions} transactions")


@main.command()
@click.argument("urls", nargs=-1, required=True)
@click.option(
    "--depth",
    "-d",
    default=0,
    show_default=True,
    type=int,
    help="0: only these pages; 1: also the pages they link to; up to 3.",
)
@click.option("--max-pages", "-m", default=100, show_default=True, type=int)
@click.option("--wait", is_flag=True, help="Show progress until the job ends, then its top words.")
def submit(urls: tuple[str, ...], depth: int, max_pages: int, wait: bool) -> None:
    """Submit a job and print its id (and, on stderr, its owner's token)."""
    client = ApiClient(_settings().api_url)
    job = _api(lambda: client.submit(list(urls), depth, max_pages))
    click.echo(job["id"])
    # stderr: `JOB=$(wordcrawl submit ...)` still gets the id alone.
    click.echo(
        f"token {job['token']}\n(keep it: only with it can you cancel or retry this job, "
        f"as Authorization: Bearer <token>; it is shown only now)",
        err=True,
    )
    if wait:
        final = _wait_with_progress(client, job["id"])
        click.echo(f"job {final['status']}: {_page_summary(final)}")
        _print_words(_api(lambda: client.words(job["id"], 10)))


@main.command()
@click.argument("job_id")
def status(job_id: str) -> None:
    """Show a job's status and page counts."""
    job = _api(lambda: ApiClient(_settings().api_url).job(job_id))
    click.echo(f"{job['id']}  {job['status']}  {_page_summary(job)}")
    for url in job["urls"]:
        click.echo(f"  {url}")


@main.command()
@click.argument("job_id")
@click.option("--top", "-n", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--stopwords", type=click.Choice(["exclude", "include"]), default="exclude", show_default=True
)
def words(job_id: str, top: int, stopwords: str) -> None:
    """Show a job's most frequent words."""
    _print_words(_api(lambda: ApiClient(_settings().api_url).words(job_id, top, stopwords)))


@main.command()
@click.argument("urls", nargs=-1)
@click.option(
    "--get",
    "paths",
    multiple=True,
    metavar="PATH",
    help="Read instead: GET this path (repeatable, taken in turn), e.g. /api/health.",
)
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(0.1, 3600))
@click.option(
    "--rate",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.1, 1000),
    help="Submissions per second.",
)
@click.option(
    "--wait",
    "wait_seconds",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="How long to wait for the accepted jobs to end.",
)
def load(
    urls: tuple[str, ...], paths: tuple[str, ...], seconds: float, rate: float, wait_seconds: float
) -> None:
    """Submit jobs of URLS at RATE per second for SECONDS; print latency and losses.

    With --get PATH, send GET requests to those paths instead (no URLS). A benchmark of a
    manager you run (WORDCRAWL_API_URL): exit status 1 on any 5xx answer, any answer
    that is not JSON (--get) or any accepted job that does not end.
    """
    from .bench.load import run_load, run_reads

    if bool(urls) == bool(paths):
        raise click.UsageError("give URLS to submit, or --get PATH to read, not both")
    if paths:
        report = run_reads(_settings().api_url, list(paths), seconds, rate)
    else:
        report = run_load(
            _settings().api_url, list(urls), seconds, rate, wait_seconds, progress=click.echo
        )
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise SystemExit(1)


def _counts(value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError as err:
        raise click.BadParameter("give worker counts like 1,2,4") from err
    if not counts or not all(1 <= count <= 32 for count in counts):
        raise click.BadParameter("give worker counts from 1 to 32, like 1,2,4")
    return counts


def _pools(value: str | None) -> list[str]:
    from .bench.speed import POOLS

    pools = [part.strip() for part in (value or _settings().worker_pool).split(",") if part]
    unknown = [pool for pool in pools if pool not in POOLS]
    if unknown or not pools:
        raise click.BadParameter(f"choose from {', '.join(POOLS)} (comma-separated)")
    return pools


@main.command()
@click.option(
    "--pages",
    "-n",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Pages to crawl (--stack: in depth-3 jobs of at most 1,000; --peers: 1,000 at most).",
)
@click.option(
    "--latency-ms",
    default=100,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="How long the demo site waits before answering each request.",
)
@click.option(
    "--workers",
    "-w",
    "worker_counts",
    default="1,2,4",
    show_default=True,
    help="Worker counts to measure, comma-separated; one crawl each.",
)
@click.option(
    "--pool",
    default=None,
    help="Celery pool(s) of the workers, comma-separated: prefork, threads, solo "
    "[default: WORDCRAWL_WORKER_POOL's].",
)
@click.option(
    "--concurrency",
    "-c",
    default=None,
    type=click.IntRange(0, 1000),
    help="Processes or threads per worker [default: WORDCRAWL_WORKER_CONCURRENCY's; "
    "0: the pool's own, prefork one per CPU, threads 16].",
)
@click.option(
    "--max-pages-per-task",
    default=None,
    type=click.IntRange(1, 1000),
    help="The most pages sent in one task message [default: WORDCRAWL_MAX_PAGES_PER_TASK's, 16].",
)
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(1, 86_400),
    help="Seconds one crawl may take before the run is counted as unfinished.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the runs."
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw pages/s against workers (PNG; needs matplotlib, the bench extra).",
)
@click.option("--keep", is_flag=True, help="Keep the bench's database and worker logs.")
@click.option(
    "--stack",
    "mode",
    flag_value="stack",
    help="Crawl through the whole default stack, as `wordcrawl up` starts it (one depth-3 "
    "job per 1,000 of --pages, through the API); pages/s, a small job's wait, memory.",
)
@click.option(
    "--peers",
    "mode",
    flag_value="peers",
    help="The --stack crawl, and the same crawl by a Scrapy spider: pages/s of each.",
)
@click.option(
    "--class",
    "mode",
    flag_value="class",
    help="A class: --clients users each submit a --job-pages job at the same moment, each "
    "to a demo site of its own, through the whole stack; p50/p95/max of their times.",
)
@click.option(
    "--clients",
    default=30,
    show_default=True,
    type=click.IntRange(1, 200),
    help="With --class: how many clients submit at once, each to a demo site of its own.",
)
@click.option(
    "--job-pages",
    default=30,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="With --class: the max_pages of each client's depth-3 job.",
)
def bench(
    pages: int,
    latency_ms: int,
    worker_counts: str,
    pool: str | None,
    concurrency: int | None,
    max_pages_per_task: int | None,
    timeout: float,
    json_path: Path | None,
    plot_path: Path | None,
    keep: bool,
    mode: str | None,
    clients: int,
    job_pages: int,
) -> None:
    """Crawl the demo site with 1, 2, 4... workers; print pages/s, latency, CPU, memory.

    With --stack, --peers or --class, measure the whole default stack instead (see
    docs/performance.md, "How to measure").

    Uses the Redis and PostgreSQL of CELERY_BROKER_URL / DATABASE_URL, in an empty Redis
    database number and a database of its own (dropped afterwards unless --keep), so a
    running stack is never touched. Exit status 1 when a run failed or a page was not
    counted.
    """
    try:
        from .bench.speed import BenchError, BenchPlan, run_bench, write_json, write_plot
    except ImportError as err:  # psutil, from the bench extra
        raise click.UsageError(f"bench needs {err.name}: pip install 'wordcrawl[bench]'") from err

    settings = _settings()
    if mode is not None:
        _bench_whole_stack(
            mode, settings, pages, latency_ms, clients, job_pages, timeout, keep, json_path
        )
        return
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as err:
            raise click.UsageError(
                "--plot needs matplotlib: pip install 'wordcrawl[bench]'"
            ) from err
    plan = BenchPlan(
        pages=pages,
        latency_ms=latency_ms,
        worker_counts=_counts(worker_counts),
        pools=_pools(pool),
        concurrency=settings.worker_concurrency if concurrency is None else concurrency,
        max_pages_per_task=(
            settings.max_pages_per_task if max_pages_per_task is None else max_pages_per_task
        ),
        timeout=timeout,
        keep=keep,
    )
    try:
        runs = run_bench(settings, plan, echo=lambda line: click.echo(line, nl=True))
    except BenchError as err:
        raise click.ClickException(str(err)) from err
    if json_path is not None:
        write_json(runs, json_path)
        click.echo(f"wrote {json_path}")
    if plot_path is not None:
        write_plot(runs, plot_path, pages, latency_ms)
        click.echo(f"wrote {plot_path}")
    if len(runs) < len(plan.pools) * len(plan.worker_counts) or not all(run.ok for run in runs):
        click.echo("a run failed, or its pages were not all counted", err=True)
        raise SystemExit(1)


def _bench_whole_stack(
    mode: str,
    settings: Settings,
    pages: int,
    latency_ms: int,
    clients: int,
    job_pages: int,
    timeout: float,
    keep: bool,
    json_path: Path | None,
) -> None:
    """Run `wordcrawl bench --stack`, `--peers` or `--class`; print and save the figures."""
    from .bench.speed import BenchError
    from .bench.stack import write_json

    try:
        if mode == "stack":
            from .bench.stack import StackPlan, run_stack_bench

            plan = StackPlan(pages=pages, latency_ms=latency_ms, timeout=timeout, keep=keep)
            run = run_stack_bench(settings, plan, echo=click.echo)
        elif mode == "peers":
            from .bench.peers import run_peers_bench
            from .bench.stack import StackPlan

            plan = StackPlan(pages=pages, latency_ms=latency_ms, timeout=timeout, keep=keep)
            run = run_peers_bench(settings, plan, echo=click.echo)
        else:
            from .bench.classroom import ClassPlan, run_class_bench

            plan = ClassPlan(clients, job_pages, latency_ms=latency_ms, timeout=timeout, keep=keep)
            run = run_class_bench(settings, plan, echo=click.echo)
    except BenchError as err:
        raise click.ClickException(str(err)) from err
    for line in run.lines():
        click.echo(line)
    if json_path is not None:
        write_json(run, json_path)
        click.echo(f"wrote {json_path}")
    if not run.ok:
        click.echo("a page was not counted, or not counted right", err=True)
        raise SystemExit(1)


@main.command()
@click.argument("change", type=click.Choice(["add", "remove", "list"]))
@click.option("--count", "-n", default=1, show_default=True, type=click.IntRange(1, 32))
def workers(change: str, count: int) -> None:
    """Add or remove workers of the `wordcrawl up` running from this folder, or list them
    (with the pid of each one's main process)."""
    from .local.services import ServiceError
    from .local.stack import WorkerControl

    control = WorkerControl(Path(_settings().state_dir).resolve())
    status = control.status()
    if status is None:
        raise click.ClickException("no `wordcrawl up` is running here (start one first)")
    if change == "list":
        # One line a worker: its name and the pid of its main process, to kill in class.
        pids = status.get("worker_pids", {})  # absent from an older `up`'s file
        for name in status["workers"]:
            click.echo(f"{name}  pid {pids[name]}" if name in pids else name)
        return
    current = len(status["workers"])
    wanted = current + count if change == "add" else max(1, current - count)
    try:
        control.ask(wanted)
    except ServiceError as err:
        raise click.ClickException(str(err)) from err
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = control.status() or {"workers": []}
        if len(status["workers"]) == wanted:
            click.echo(f"workers: {', '.join(status['workers'])}")
            return
        time.sleep(0.2)
    raise click.ClickException("`wordcrawl up` did not change its workers within 60 s")


@main.command("demo-site")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "-p", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--pages", default=100, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "--latency-ms",
    default=0,
    show_default=True,
    type=click.IntRange(0, 60_000),
    help="Wait this long before answering each request.",
)
def demo_site(host: str, port: int, pages: int, latency_ms: int) -> None:
    """Serve a site of generated, linked pages, for demos, tests and benchmarks."""
    from .demo_site import DemoServer, DemoSite

    server = DemoServer(DemoSite(pages=pages, latency_ms=latency_ms), host, port)
    click.echo(f"demo site with {pages} pages at {server.url}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _api(call):
    try:
        return call()
    except ApiClientError as err:
        raise click.ClickException(str(err)) from err


def _page_summary(job: dict) -> str:
    p = job["pages"]
    return (
        f"{p['total']} pages: {p['done']} done, {p['failed']} failed, "
        f"{p['skipped']} skipped, {p['running']} running, {p['queued']} queued"
    )


def _wait_with_progress(client: ApiClient, job_id: str) -> dict:
    from tqdm import tqdm

    started = time.monotonic()
    delay = 0.1  # a one-page job ends in well under a second: look soon, then less often
    with tqdm(total=1, unit="page", desc="pages", dynamic_ncols=True) as bar:
        while True:
            job = _api(lambda: client.job(job_id))
            p = job["pages"]
            ended = p["done"] + p["failed"] + p["skipped"]
            bar.total = max(p["total"], 1)
            bar.n = ended
            rate = ended / max(time.monotonic() - started, 1e-6)
            bar.set_postfix(status=job["status"], pages_per_s=f"{rate:.1f}")
            bar.refresh()
            if job["status"] not in OPEN_STATUSES:
                return job
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)


def _print_words(rows: list[dict]) -> None:
    if not rows:
        click.echo("no words counted")
        return
    width = max(len(row["word"]) for row in rows)
    for row in rows:
        click.echo(f"{row['word']:<{width}}  {row['count']}")
