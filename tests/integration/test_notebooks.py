"""The course notebooks (notebooks/*.ipynb) run top to bottom on data made by a real crawl.

Each notebook is executed by nbclient in a fresh IPython kernel (the `python3` kernelspec
that ipykernel installs into the venv), as a student would run it: against the test
database after the real workers have crawled the demo site and the fixture site (pages
done and failed, both workers, Celery's own result rows), against an empty database, where
every part must say that it has nothing to show instead of raising, and (the scaling
notebook) against the JSON of `wordcrawl bench`. An error in any cell fails the test. The
notebooks are read into memory and executed there: the files in the repository are never
written, except by `make notebooks`.

The notebooks are committed executed, so that students can read them before running them.
`make notebooks` (WORDCRAWL_WRITE_NOTEBOOKS=1) runs them on a fresh crawl of the demo site
and stores their outputs; every run of the suite checks that the stored outputs belong to
the notebooks' code as it is (a digest of the code cells and of the bench JSON they read).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
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
from job_tasks.settings import Settings, sqlalchemy_url
from job_tasks.storing import db as job_db
from job_tasks.storing.db import drop_database
from job_tasks.storing.schema import init_db

pytestmark = pytest.mark.slow  # executes the course notebooks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
CELL_TIMEOUT = 120  # seconds per cell
WRITE = os.environ.get("WORDCRAWL_WRITE_NOTEBOOKS") == "1"  # `make notebooks`
# The committed scaling notebook plots the bench runs kept in docs/ (a path relative to the
# kernel's working directory, notebooks/, so the output names no machine's folders).
COMMITTED_BENCH_JSON = "../docs/bench.json"
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


def execute(name: str, database_url: str, record_timing: bool = True, **env: str):
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
        record_timing=record_timing,
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
    assert f"Job: {crawled[2]['id'][:8]}" in text  # the newest job with words, by default
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


# --- The notebooks as committed: executed, on a crawl of the demo site ------------------


def code_digest(notebook) -> str:
    """A digest of a notebook's code cells: outputs belong to the code that made them."""
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def course_crawls(app, workers, demo_site) -> list[dict]:
    """Crawls of the demo site as a student makes them: two pages, one of them not there (a
    404); one page alone (exercise 5); then the site to depth 2, the newest job."""
    client = app.test_client()
    ids = [
        submit_job(client, [demo_site.url + "page/3", demo_site.url + "page/999"]),
        submit_job(client, [demo_site.url + "page/7"]),
        submit_job(client, [demo_site.url], depth=2),
    ]
    jobs = [wait_for_job(client, job_id, timeout=60) for job_id in ids]
    assert [job["status"] for job in jobs] == ["done"] * 3
    return jobs


def normalise(notebook, replacements: dict[str, str]) -> None:
    """Write what belongs to this test run as a student's stack shows it: the test
    database's name as wordcrawl's default database, the demo site's address as `wordcrawl
    up`'s, this machine's name as `host`. The data itself is the crawl's, untouched."""

    def clean(text: str) -> str:
        for old, new in replacements.items():
            text = text.replace(old, new)
        return text

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                output["text"] = clean(output["text"])
            for key in ("text/plain", "text/html"):
                if key in output.get("data", {}):
                    output["data"][key] = clean(output["data"][key])


def write_committed_notebooks(request, services) -> None:
    """Run every notebook on a fresh crawl of the demo site and store it with its outputs."""
    demo_site = request.getfixturevalue("demo_site")
    request.getfixturevalue("course_crawls")
    database = make_url(services.database_url).database
    replacements = {
        demo_site.url: "http://127.0.0.1:8001/",
        f"/{database}": "/wordcrawl",
        f"@{socket.gethostname()}": "@host",
    }
    for name in sorted(PLOTS):
        env = {}
        database_url = services.database_url
        if name == "02_scaling_experiment":
            env["WORDCRAWL_BENCH_JSON"] = COMMITTED_BENCH_JSON
            database_url = Settings.database_url  # the bench's JSON needs no database
        notebook = execute(name, database_url, record_timing=False, **env)
        normalise(notebook, replacements)
        notebook.metadata["wordcrawl"] = {"code_sha256": code_digest(notebook)}
        if env:
            bench = NOTEBOOKS_DIR / COMMITTED_BENCH_JSON
            notebook.metadata["wordcrawl"]["bench_json_sha256"] = file_digest(bench)
        nbformat.write(notebook, NOTEBOOKS_DIR / f"{name}.ipynb")


def test_the_committed_notebooks_hold_the_outputs_of_their_code(request, services):
    """Students read the notebooks before running them: every cell ran, top to bottom, on
    a crawl, without error, and the code has not changed since (else: `make notebooks`)."""
    if WRITE:
        write_committed_notebooks(request, services)
    for name in sorted(PLOTS):
        notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
        stamp = notebook.metadata.get("wordcrawl", {})
        assert stamp.get("code_sha256") == code_digest(notebook), (
            f"{name}: its code changed since its outputs were made: run `make notebooks`"
        )
        if "bench_json_sha256" in stamp:
            bench = NOTEBOOKS_DIR / COMMITTED_BENCH_JSON
            assert stamp["bench_json_sha256"] == file_digest(bench), (
                f"{name}: {COMMITTED_BENCH_JSON} changed: run `make notebooks`"
            )
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), name
        outputs = [output for cell in code for output in cell.outputs]
        assert not [output for output in outputs if output["output_type"] == "error"], name
        assert NOTHING not in output_text(notebook), name
        assert plots(notebook) == (2 if name == "02_scaling_experiment" else PLOTS[name])
