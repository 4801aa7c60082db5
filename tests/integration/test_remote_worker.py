"""A worker on another machine needs the package and two variables, and no file of ours.

The test plays that other machine (docs/operations.md, "Workers on other machines"): a new virtual
environment in a folder of its own, wordcrawl installed into it from a wheel built from the
source, and `wordcrawl worker` started from an empty folder with an environment that holds
CELERY_BROKER_URL and DATABASE_URL and little else. The two URLs log in as a Redis user and
a PostgreSQL role made from the docs' own commands, so they hold no more rights than
the docs give workers. The worker must take part in a crawl that the manager of this
test session started, and store what it counted.

Nothing is downloaded: the wheel is built without build isolation (setuptools comes with
the test extras), and the new environment sees this one's dependencies (Celery, SQLAlchemy
and so on) through a .pth file, as if they had been installed there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from conftest import Services, submit_job, wait_for_job
from processes import START_TIMEOUT, node_name, wait_for
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

import job_tasks
from job_tasks.celeryconfig import CRAWL_QUEUE
from job_tasks.settings import sqlalchemy_url
from job_tasks.storing import db as job_db
from wordcrawl.demo_site import DemoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # builds a wheel and a second environment

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("job_tasks", "job_worker", "job_manager", "job_viewer", "wordcrawl")
# What `pip wheel` needs of the source: pyproject.toml, the README it names, the packages.
SOURCE = ("pyproject.toml", "README.md", *PACKAGES)
REMOTE = node_name("remote")


def run(*argv: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=120, **kwargs
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result


def pip(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """Run this environment's pip, offline."""
    return run(sys.executable, "-m", "pip", "--disable-pip-version-check", *argv)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wordcrawl as a wheel, built from a copy of the source, so the checkout gets no build/."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCE:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, source / name)
    pip("wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
        "--wheel-dir", work, source)  # fmt: skip
    (built,) = work.glob("wordcrawl-*.whl")
    return built


@pytest.fixture(scope="module")
def remote_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with wordcrawl installed from the wheel alone."""
    venv = tmp_path_factory.mktemp("other-machine") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip("--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel)
    # Only now the dependencies: before the install, pip would see the checkout's own
    # (editable) wordcrawl through this line. A directory named in a .pth file is added to
    # sys.path after the venv's site-packages, and its own .pth files (the editable
    # install's hook among them) are not run, so wordcrawl comes from the wheel.
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    dependencies = Path(purelib.stdout.strip()) / "wordcrawl-test-dependencies.pth"
    dependencies.write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def operations_section(title: str) -> str:
    """Return the text of one `## ` section of docs/operations.md."""
    readme = (REPO / "docs" / "operations.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end]


def with_login(url: str, user: str, password: str) -> str:
    """Return the URL with this user and password in place of its own."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture(scope="module")
def worker_login(services: Services) -> Iterator[dict[str, str]]:
    """A Redis user and a PostgreSQL role with the rights docs/operations.md gives workers, made
    with its commands; the broker and database URLs that log in as them."""
    section = operations_section("Workers on other machines")
    # Both servers may be shared with other test sessions: names of our own.
    name = f"wordcrawl_worker_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    database = urlsplit(services.database_url).path.lstrip("/")

    (acl_rules,) = re.findall(r"^ACL SETUSER \S+ (.+)$", section, flags=re.MULTILINE)
    (grants,) = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    grants = re.sub(r"--.*", "", grants).replace("wordcrawl_worker", name)
    grants = grants.replace("'CHANGE-ME'", f"'{password}'")
    grants = grants.replace("DATABASE wordcrawl ", f'DATABASE "{database}" ')
    engine = job_db.get_engine(services.database_url)
    with engine.begin() as conn:  # one transaction: the role is made whole or not at all
        for statement in filter(str.strip, grants.split(";")):
            conn.execute(text(statement))

    broker = redis.Redis.from_url(services.broker_url)
    try:
        broker.execute_command(
            "ACL", "SETUSER", name, *acl_rules.replace("CHANGE-ME", password).split()
        )
        yield {
            "CELERY_BROKER_URL": with_login(services.broker_url, name, password),
            "DATABASE_URL": with_login(services.database_url, name, password),
        }
    finally:
        broker.execute_command("ACL", "DELUSER", name)
        broker.close()
        with engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {name}"))
            conn.execute(text(f"DROP ROLE {name}"))


@pytest.fixture(scope="module")
def remote_env(
    worker_login: dict[str, str], remote_venv: Path, demo_site: DemoServer, tmp_path_factory
) -> dict[str, str]:
    """All the environment the other machine's worker gets: no PYTHONPATH, nothing of ours."""
    return {
        **worker_login,  # CELERY_BROKER_URL and DATABASE_URL
        # Not needed on a real second machine: the test's demo site listens on 127.0.0.1,
        # a loopback address that the safety defaults refuse (docs/reference.md, "What is refused").
        "WORDCRAWL_ALLOWED_HOSTS": f"127.0.0.1:{demo_site.server_address[1]}",
        # What any login gives a process.
        "PATH": f"{remote_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path_factory.mktemp("home")),
        "LANG": "C.UTF-8",
    }


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the worker starts in: no file of the manager's, no settings file."""
    return tmp_path_factory.mktemp("empty")


class RemoteWorker(NamedTuple):
    process: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def remote_worker(
    remote_env: dict[str, str], empty_dir: Path, tmp_path_factory
) -> Iterator[RemoteWorker]:
    """`wordcrawl worker --name remote`, from the other environment, until it answers a ping."""
    log_path = tmp_path_factory.mktemp("remote-log") / "remote.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["wordcrawl", "worker", "--name", "remote"],
            cwd=empty_dir,
            env=remote_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: REMOTE in online(0.5) or process.poll() is not None,
            START_TIMEOUT,
            f"the remote worker did not answer; log: {log_path}",
        )
        assert process.poll() is None, f"the remote worker exited:\n{log_path.read_text()}"
        yield RemoteWorker(process, log_path)
    finally:
        process.terminate()  # a warm shutdown
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its pool's children, if any are left


def online(timeout: float = 2.0) -> set[str]:
    """The node names of the workers that answer a ping within `timeout` seconds.

    Generous: a busy worker on a loaded machine may take over half a second to answer, and
    one missed here would go on taking pages in only_remote_crawls.
    """
    return {node for reply in job_tasks.app.control.ping(timeout=timeout) or [] for node in reply}


@pytest.fixture
def only_remote_crawls(remote_worker: RemoteWorker) -> Iterator[None]:
    """Have this session's other workers, if any are up, stop taking pages meanwhile,
    so that the remote worker crawls the whole job."""
    others = sorted(online() - {REMOTE})
    control = job_tasks.app.control
    if others:
        control.cancel_consumer(CRAWL_QUEUE, destination=others, reply=True)
    try:
        yield
    finally:
        if others:
            control.add_consumer(CRAWL_QUEUE, destination=others, reply=True)


def test_the_wheel_ships_every_file_the_packages_read(wheel: Path):
    # Templates, static files, NLTK's stopwords and the schema's migrations as well as
    # the code.
    in_source = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "job_tasks/reading/nltk_data/corpora/stopwords/english" in in_source
    assert "job_tasks/storing/migrations/versions/0001_first_release.py" in in_source
    missing = in_source - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"not in the wheel (pyproject.toml, package-data): {sorted(missing)}"


def test_the_workers_login_can_neither_change_tables_nor_flush_the_broker(
    worker_login: dict[str, str],
):
    engine = create_engine(sqlalchemy_url(worker_login["DATABASE_URL"]))
    try:
        for statement in ("DROP TABLE word_counts", "DELETE FROM pages", "CREATE TABLE t (i int)"):
            with (
                pytest.raises(ProgrammingError, match=r"permission denied|must be owner"),
                engine.begin() as conn,
            ):
                conn.execute(text(statement))
    finally:
        engine.dispose()
    with redis.Redis.from_url(worker_login["CELERY_BROKER_URL"]) as broker:
        for command in ("FLUSHDB", "FLUSHALL", "KEYS *"):
            with pytest.raises(redis.exceptions.NoPermissionError):
                broker.execute_command(*command.split())


def test_the_other_environment_runs_the_installed_package_not_the_checkout(
    remote_venv: Path, remote_env: dict[str, str], empty_dir: Path
):
    found = run(
        "python",
        "-c",
        "import job_tasks, job_worker, celery; print(job_tasks.__file__, job_worker.__file__)",
        cwd=empty_dir,
        env=remote_env,
    )
    command = shutil.which("wordcrawl", path=remote_env["PATH"])
    for path in [*map(Path, found.stdout.split()), Path(command)]:
        assert not path.is_relative_to(REPO), path
        assert path.is_relative_to(remote_venv), path
    assert not any(empty_dir.iterdir())


def test_a_worker_with_two_variables_takes_part_in_a_crawl(
    remote_worker: RemoteWorker, only_remote_crawls, client, demo_site: DemoServer, sql
):
    base = f"http://127.0.0.1:{demo_site.server_address[1]}"

    job_id = submit_job(client, [f"{base}/", *(f"{base}/page/{n}" for n in range(1, 12))])
    job = wait_for_job(client, job_id, timeout=45)

    assert job["status"] == "done", job
    pages = sql(
        "SELECT p.status, p.worker, p.word_count, "
        "(SELECT count(*) FROM word_counts w WHERE w.page_id = p.id) "
        "FROM pages p WHERE p.job_id = :job_id",
        job_id=job_id,
    )
    assert len(pages) == 12
    for status, worker, word_count, stored_words in pages:
        assert (status, worker) == ("done", REMOTE), pages
        assert word_count > 0 and stored_words > 0
    # Celery's own record of each task went to the same database, derived from DATABASE_URL.
    ((recorded,),) = sql(
        "SELECT count(*) FROM celery_taskmeta t JOIN pages p ON p.task_id = t.task_id "
        "WHERE p.job_id = :job_id AND t.worker = :worker AND t.status = 'SUCCESS'",
        job_id=job_id,
        worker=REMOTE,
    )
    assert recorded == len(pages)
    # The docs' rights were enough for all it did.
    log = remote_worker.log.read_text()
    assert "permission denied" not in log and "NOPERM" not in log, log
