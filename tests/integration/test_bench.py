"""`wordcrawl bench`, run briefly as a user would: real workers, its own database, a plot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from matplotlib import image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from job_tasks.settings import sqlalchemy_url

pytestmark = pytest.mark.slow  # runs `wordcrawl bench`

FIELDS = {
    "workers",
    "pool",
    "concurrency",
    "max_pages_per_task",
    "pages",
    "seconds",
    "pages_per_second",
    "p50_ms",
    "p95_ms",
    "cpu_seconds",
    "cpu_ms_per_page",
    "peak_rss_mb",
    "db_commits_per_page",
}


def test_bench_prints_figures_and_writes_json_and_a_plot(services, tmp_path):
    # The servers the session found or started; the bench claims its own Redis database
    # number and creates (then drops) its own database on them.
    env = {
        **os.environ,
        "CELERY_BROKER_URL": services.redis_server_url,
        "DATABASE_URL": services.postgres_server_url,
    }
    json_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    command = [sys.executable, "-m", "wordcrawl", "bench", "--pages", "30"]
    command += ["--latency-ms", "20", "--workers", "1,2"]

    result = subprocess.run(
        [*command, "--json", str(json_path), "--plot", str(plot_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("workers"))
    assert lines[header].split()[:6] == ["workers", "pool", "conc", "pages", "seconds", "pages/s"]
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:
        assert row[3] == "30"  # pages
        assert float(row[5]) > 0  # pages/s
        assert float(row[6]) <= float(row[7])  # p50 <= p95
        assert float(row[9]) > 0  # CPU ms per page
        assert float(row[10]) > 0  # peak RSS
        assert row[-1] == "yes"  # every page counted, and the words add up

    runs = json.loads(json_path.read_text())
    assert [run["workers"] for run in runs] == [1, 2]
    for run in runs:
        assert run.keys() >= FIELDS
        assert run["pages"] == 30 and run["pages_per_second"] > 0
        assert run["cpu_seconds"] > 0 and run["peak_rss_mb"] > 0
        assert run["db_commits_per_page"] is not None and run["db_commits_per_page"] >= 1
    assert plot_path.read_bytes().startswith(b"\x89PNG")
    height, width, _ = image.imread(plot_path).shape
    assert width > 300 and height > 200

    # Its database is gone again, and nothing else was touched.
    database = re.search(r"database (wordcrawl_bench_\w+)", result.stdout).group(1)
    server = make_url(sqlalchemy_url(services.postgres_server_url))
    admin = create_engine(server.set(database="postgres"))
    try:
        with admin.connect() as conn:
            left = conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar_one()
    finally:
        admin.dispose()
    assert left == 0


def test_bench_sends_groups_of_pages_up_to_the_bound_asked(services, tmp_path):
    env = {
        **os.environ,
        "CELERY_BROKER_URL": services.redis_server_url,
        "DATABASE_URL": services.postgres_server_url,
    }
    json_path = tmp_path / "bench.json"
    command = [sys.executable, "-m", "wordcrawl", "bench", "--pages", "30", "--latency-ms"]
    command += ["20", "--workers", "1", "--max-pages-per-task", "5", "--json", str(json_path)]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to 5 per task" in result.stdout
    (run,) = json.loads(json_path.read_text())
    assert run["max_pages_per_task"] == 5
    # Every page counted with the words the site served (the bench checks them), the 30
    # pages in the 16 messages the job may have: fewer commits per page than one page per
    # task makes (6).
    (line,) = [
        line for line in result.stdout.splitlines() if line.split()[:2] == ["1", run["pool"]]
    ]
    assert run["pages"] == 30 and line.endswith("yes")
    assert run["db_commits_per_page"] < 6


# --- the whole stack: --stack, --peers, --class --------------------------------------


def _bench(services, tmp_path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `wordcrawl bench OPTIONS --json`; return the result and the JSON it wrote."""
    env = {
        **os.environ,
        "CELERY_BROKER_URL": services.redis_server_url,
        "DATABASE_URL": services.postgres_server_url,
    }
    json_path = tmp_path / "bench.json"
    command = [sys.executable, "-m", "wordcrawl", "bench", *options, "--json", str(json_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(json_path.read_text())


def _database_is_gone(services, output: str) -> bool:
    database = re.search(r"database (wordcrawl_bench_\w+)", output).group(1)
    server = make_url(sqlalchemy_url(services.postgres_server_url))
    admin = create_engine(server.set(database="postgres"))
    try:
        with admin.connect() as conn:
            return not conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar_one()
    finally:
        admin.dispose()


def _figure(output: str, pattern: str) -> float:
    return float(re.search(pattern, output, re.MULTILINE).group(1))


def test_bench_stack_crawls_through_the_whole_stack(services, tmp_path):
    result, run = _bench(services, tmp_path, "--stack", "--pages", "60", "--latency-ms", "20")

    out = result.stdout
    assert "1 job(s) through the API" in out
    assert _figure(out, r"^pages/s\s+([\d.]+)") > 0
    assert _figure(out, r"^probe job\s+([\d.]+) s") > 0
    assert _figure(out, r"^stack RSS\s+peak ([\d.]+) MB") > 100  # manager, Flower, workers
    assert re.search(r"^counted\s+yes$", out, re.MULTILINE)
    # Every page the site served was counted, with the words it served (the robots.txt
    # refusal and the link to another host are the job's too).
    assert 55 <= run["pages"] <= 60 and run["done"] == run["words_ok"] == run["pages"]
    assert run["pages_per_second"] > 0 and 0 < run["probe_seconds"] < 30
    assert run["peak_rss_mb"] >= run["start_rss_mb"] > 0 and run["rss_mb_over_time"]
    pieces = run["rss_mb_by_piece"]
    assert set(pieces) == {"manager", "flower", "worker w1", "worker w2"}
    assert all(start > 0 and end > 0 for start, end in pieces.values())
    assert _database_is_gone(services, out)


def test_bench_peers_puts_scrapy_beside_the_stack(services, tmp_path):
    result, run = _bench(services, tmp_path, "--peers", "--pages", "60", "--latency-ms", "20")

    out = result.stdout
    scrapy, wordcrawl = run["scrapy"], run["wordcrawl"]
    assert _figure(out, r"^Scrapy\s+([\d.]+) pages/s") == scrapy["pages_per_second"] > 0
    assert _figure(out, r"^wordcrawl pages/s\s+([\d.]+)") == wordcrawl["pages_per_second"] > 0
    ratio = _figure(out, r"^wordcrawl / Scrapy\s+([\d.]+)")
    assert ratio == pytest.approx(wordcrawl["pages_per_second"] / scrapy["pages_per_second"], 0.01)
    # Both counted every page with the words the site served (Scrapy obeys robots.txt too).
    assert 55 <= scrapy["pages"] <= 60 and scrapy["words_ok"] == scrapy["pages"]
    assert wordcrawl["done"] == wordcrawl["words_ok"] == wordcrawl["pages"] >= 55


def test_bench_class_times_every_clients_job(services, tmp_path):
    result, run = _bench(
        services, tmp_path, "--class", "--clients", "3", "--job-pages", "20", "--latency-ms", "20"
    )

    out = result.stdout
    assert "WORDCRAWL_SUBMISSIONS_PER_MINUTE" in out  # says the bench raised it
    p50 = _figure(out, r"p50 ([\d.]+) s")
    p95, most = _figure(out, r"p95 ([\d.]+) s"), _figure(out, r"max ([\d.]+) s")
    assert 0 < p50 <= p95 <= most < 60
    assert len(run["job_seconds"]) == 3 and max(run["job_seconds"]) == run["max_seconds"]
    # Three sites of their own, 20 pages each (one is the robots.txt refusal, one the
    # link to another host, on page 0 of each site): every served page counted right.
    assert 3 * 18 <= run["pages"] <= 3 * 20
    assert run["done"] == run["words_ok"] == run["pages"]
    assert _database_is_gone(services, out)
