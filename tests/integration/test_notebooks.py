"""The course notebooks (notebooks/*.ipynb) run top to bottom on data made by a real crawl.

Each notebook is executed by nbclient in a fresh IPython kernel (the `python3` kernelspec
that ipykernel installs into the venv), as a student would run it: against the test
database after the real workers have crawled the demo site and the fixture site (pages
done and failed, both workers, Celery's own result rows), against an empty database, where
every part must say that it has nothing to show instead of raising, and (the scaling
notebook) against the JSON of `wordcrawl bench`. An error in any cell fails the test. The
notebooks are read into memory and executed there: the files in the repository are never
written.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from conftest import Services, submit_job, wait_for_job
from nbclient import NotebookClient
from sqlalchemy.engine import make_url

import job_tasks
from job_tasks.settings import sqlalchemy_url
from job_tasks.storing import db as job_db
from job_tasks.storing.db import drop_database
from job_tasks.storing.schema import init_db

pytestmark = pytest.mark.slow  # executes the course notebooks

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT = 120  # seconds per cell
NOTHING = "Nothing to show yet"
# The plots each notebook draws on a real crawl (the scaling notebook's CPU plot needs the
# JSON of `wordcrawl bench`).
PLOTS = {"01_results_with_sql": 4, "02_scaling_experiment": 1, "03_celery_results": 2}


def test_every_notebook_in_the_folder_is_tested():
    assert sorted(path.stem for path in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(PLOTS)


@pytest.fixture(scope="module")
def crawled(app, workers, demo_site, fixture_site) -> list[dict]:
    """Real crawls, as the crawl fixture makes them (once for all notebooks): the demo site
    to depth 1, one of its pages to depth 1, and two fixture-site pages, one a 404."""
    client = app.test_client()
    ids = [
        submit_job(client, [demo_site.url], depth=1),
        submit_job(client, [demo_site.url + "page/3"], depth=1),
        submit_job(client, [fixture_site.url("/ok"), fixture_site.url("/missing")]),
    ]
    jobs = [wait_for_job(client, job_id, timeout=60) for job_id in ids]
    assert [job["status"] for job in jobs] == ["done"] * 3
    assert jobs[2]["pages"]["failed"] == 1
    return jobs


@pytest.fixture(scope="module")
def empty_database_url(services: Services) -> Iterator[str]:
    """A database with wordcrawl's and Celery's tables and not one row in them."""
    name = f"wordcrawl_test_empty_{uuid.uuid4().hex[:12]}"
    url = make_url(services.database_url).set(database=name).render_as_string(False)
    job_db.create_database_if_missing(url)
    init_db(url)
    # Celery creates its tables when a result session opens, in the backend's database:
    # a backend of the app's class, pointed at this database.
    backend = type(job_tasks.app.backend)(app=job_tasks.app, url=sqlalchemy_url(url))
    backend.ResultSession().close()
    try:
        yield url
    finally:
        backend.session_manager.get_engine(backend.url).dispose()
        job_db._engines.pop(url).dispose()
        drop_database(url)


def execute(name: str, database_url: str, **env: str):
    """Run a notebook top to bottom in a new python3 kernel, in memory; return it run.

    The kernel gets this process's environment (which conftest points at the test
    services) with DATABASE_URL set explicitly, and without the variables that change what
    the notebooks read unless a test gives them.
    """
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        allow_errors=False,  # the first cell that raises fails the test (CellExecutionError)
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},  # the kernel's working directory
    )
    kernel_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("WORDCRAWL_BENCH_JSON", "WORDCRAWL_JOB_ID")
    }
    client.execute(env={**kernel_env, "DATABASE_URL": database_url, **env})
    return notebook


def output_text(notebook) -> str:
    """All the text a notebook printed or displayed, in one string."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                parts.append(output["text"])
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def plots(notebook) -> int:
    """How many images (matplotlib figures) a notebook displayed."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def test_the_notebook_kernel_is_this_venvs_python_and_sees_the_test_database(services):
    assert os.environ["DATABASE_URL"] == services.database_url  # set by conftest
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "import os, sys\nprint(sys.executable)\nprint(os.environ['DATABASE_URL'])"
        )
    )
    NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT).execute(
        env=dict(os.environ)
    )

    executable, database_url = notebook.cells[0].outputs[0]["text"].split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert database_url == services.database_url


def test_the_results_notebook_shows_a_real_crawl(crawled, services):
    notebook = execute("01_results_with_sql", services.database_url)

    text = output_text(notebook)
    assert NOTHING not in text
    assert f"Job: {crawled[2]['id']}" in text  # the newest job with words, by default
    assert "fox" in text  # a word of its /ok page
    assert "http_error" in text and "robots_disallowed" in text  # its 404, the demo's robots
    assert plots(notebook) == PLOTS["01_results_with_sql"]


def test_the_scaling_notebook_measures_the_crawls_in_the_database(crawled, services):
    notebook = execute("02_scaling_experiment", services.database_url)

    text = output_text(notebook)
    assert "measuring the jobs in the database" in text
    assert NOTHING not in text
    assert crawled[0]["id"][:8] in text  # the depth-1 crawl of the demo site is a run
    assert plots(notebook) == PLOTS["02_scaling_experiment"]


def test_the_celery_notebook_joins_celerys_rows_with_the_pages(crawled, services):
    notebook = execute("03_celery_results", services.database_url)

    text = output_text(notebook)
    assert NOTHING not in text  # crawl_pages stores its results: every part has rows
    assert "PageFailed" in text  # a failed page's task result, decoded from JSON
    assert "An id Celery never saw: PENDING" in text
    assert plots(notebook) == PLOTS["03_celery_results"]


def test_the_scaling_notebook_reads_the_json_of_wordcrawl_bench(empty_database_url, tmp_path):
    # Runs in the shape `wordcrawl bench --json` writes (wordcrawl/bench/speed.py, BenchRun).
    measured = [  # pool, workers, pages per second, CPU seconds
        ("prefork", 1, 18.5, 2.1),
        ("prefork", 2, 35.9, 2.3),
        ("prefork", 4, 52.0, 3.4),
        ("threads", 1, 60.0, 2.0),
        ("threads", 2, 118.0, 2.2),
        ("threads", 4, 190.0, 2.9),
    ]
    runs = [
        {
            "workers": workers,
            "pool": pool,
            "concurrency": 4,
            "pages": 200,
            "seconds": 200 / rate,
            "pages_per_second": rate,
            "p50_ms": 90_000 / rate,
            "p95_ms": 180_000 / rate,
            "cpu_seconds": cpu,
            "cpu_ms_per_page": cpu * 5,
            "peak_rss_mb": 90.0,
            "db_commits_per_page": 2.0,
            "db_rows_per_page": 40.0,
            "done": 200,
            "words_ok": True,
        }
        for pool, workers, rate, cpu in measured
    ]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(runs))

    notebook = execute("02_scaling_experiment", empty_database_url, WORDCRAWL_BENCH_JSON=str(bench))

    text = output_text(notebook)
    assert f"6 runs of `wordcrawl bench` read from {bench}" in text
    assert "threads" in text and "efficiency" in text and "cpu_ms_per_page" in text
    assert plots(notebook) == 2  # throughput and latency, CPU per page


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_a_notebook_says_it_has_nothing_to_show_on_an_empty_database(name, empty_database_url):
    notebook = execute(name, empty_database_url)

    assert NOTHING in output_text(notebook)
    assert plots(notebook) == 0
