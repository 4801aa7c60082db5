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
