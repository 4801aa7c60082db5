"""`wordcrawl load`, the API's load benchmark, run briefly against a manager over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # puts the manager under load


def test_load_benchmark_prints_figures_and_loses_no_job(manager_url, fixture_site):
    env = {**os.environ, "WORDCRAWL_API_URL": manager_url}
    command = [sys.executable, "-m", "wordcrawl", "load", fixture_site.url("/ok")]

    result = subprocess.run(
        [*command, "--seconds", "3", "--rate", "10", "--wait", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    figures = dict(line.split(None, 2)[::2] for line in result.stdout.splitlines()[1:])
    assert figures.keys() >= {"requests", "latency", "answers", "server", "jobs"}
    assert "server errors   0 (5xx), 0 unanswered" in result.stdout
    assert "answers         202: 30" in result.stdout
    assert "jobs accepted   30, ended 30, not ended 0" in result.stdout
    latency = [
        float(line.split()[2]) for line in result.stdout.splitlines() if line.startswith("latency")
    ]
    assert len(latency) == 4  # p50, p95, p99, max
    assert 0 < latency[0] <= latency[1] <= latency[2] <= latency[3]
