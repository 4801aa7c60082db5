"""`wordcrawl up` as a person runs it: the whole stack, one crawl through it, then Ctrl-C.

Each test starts the real command in a session of its own, on free ports (manager and
Flower; the demo site moves off 8001 when that is taken), waits for its banner, submits a
demo-site page with `wordcrawl submit --wait`, logs in to Flower with the printed
credentials, and stops it with SIGINT: every process it started must be gone, and every
port it used free. Once it runs against the machine's Redis and PostgreSQL (in a Redis
database number and a PostgreSQL database of the test's own, which `up` must create), and
once where nothing answers, so that it starts its own embedded servers; there, with a
fresh laptop's defaults, the README's guided run (a depth-3 crawl of the demo site) must
end as the README says, its numbers read from the README. The first run also
adds and removes a worker, and kills one with SIGKILL mid-crawl: `up` starts it again under
its name, and the crawl loses no page and counts none twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg2
import pytest
import redis
import requests
from conftest import claim_redis_database, release_redis_database
from processes import node_name, wait_for
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from job_tasks.settings import sqlalchemy_url
from job_tasks.storing.db import drop_database
from wordcrawl.demo_site import DemoSite
from wordcrawl.local.services import free_port, port_is_free, redis_maxmemory

pytestmark = pytest.mark.slow  # starts whole stacks with `wordcrawl up`

START_TIMEOUT = 180.0  # a first embedded PostgreSQL runs initdb
STOP_TIMEOUT = 60.0
SUBMIT_TIMEOUT = 90.0

README = Path(__file__).resolve().parents[2] / "README.md"
BANNER_END = "Press Ctrl-C to stop everything."
BANNER = {
    "manager": re.compile(r"^\s*web form\s+(http://\S+?)/?$", re.M),
    "flower": re.compile(r"^\s*Flower\s+(http://\S+?)/?\s+user (\S+)\s+password (\S+)$", re.M),
    "instructor": re.compile(r"^\s*instructor\s+user admin\s+password (\S+)", re.M),
    "demo": re.compile(r"^\s*demo site\s+(http://\S+?)/?\s", re.M),
    "broker": re.compile(r"^\s*broker\s+(.+)$", re.M),
    "database": re.compile(r"^\s*database\s+(.+)$", re.M),
}


def wordcrawl_command() -> list[str]:
    """The `wordcrawl` script of this venv, as a person types it (else `python -m`)."""
    script = Path(sys.executable).with_name("wordcrawl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wordcrawl"]


def clean_env(**variables: str) -> dict[str, str]:
    """This environment without any wordcrawl, Celery or Flower setting, plus `variables`."""
    ours = ("CELERY_", "FLOWER_", "WORDCRAWL_", "DATABASE_URL", "SECRET_KEY")
    env = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    return {**env, "PYTHONUNBUFFERED": "1", **variables}


@dataclass
class Up:
    """A running `wordcrawl up`, with its output collected as it comes."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path, port: int) -> Up:
        process = subprocess.Popen(
            [
                *wordcrawl_command(),
                "up",
                "--workers",
                "2",
                "--port",
                str(port),
                "--demo-port",
                str(free_port()),
            ],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # as in a terminal of its own: our Ctrl-C is not its
        )
        up = cls(process)
        threading.Thread(target=up._read, daemon=True).start()
        return up

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def banner(self) -> dict[str, re.Match]:
        """Wait for the banner; return its lines, parsed."""

        def printed() -> bool:
            assert self.process.poll() is None, f"wordcrawl up exited:\n{self.output}"
            return BANNER_END in self.output

        wait_for(printed, START_TIMEOUT, f"no banner from wordcrawl up:\n{self.output}", 0.2)
        found = {name: pattern.search(self.output) for name, pattern in BANNER.items()}
        assert all(found.values()), f"banner lacks {found}:\n{self.output}"
        return found

    def interrupt(self) -> int:
        """Press Ctrl-C (SIGINT to the process, as a terminal does); return the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"wordcrawl up did not stop within {STOP_TIMEOUT:g} s:\n{self.output}")

    def kill_all(self) -> None:
        """After a failure: leave nothing behind, whatever state `up` is in."""
        if self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                family = psutil.Process(self.process.pid).children(recursive=True)
                self.process.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(STOP_TIMEOUT)
                for proc in family:
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def left_behind(processes: list[psutil.Process], timeout: float = 15.0) -> list[str]:
    """Wait for processes to end; describe the ones still running (zombies count as gone)."""
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    remaining = []
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.status() != psutil.STATUS_ZOMBIE:
                remaining.append(f"{proc.pid} {' '.join(proc.cmdline())}")
    return remaining


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def run_stack_once(
    env: dict[str, str],
    cwd: Path,
    scale: bool = False,
    kill: bool = False,
    while_up: Callable[[dict[str, re.Match], list[psutil.Process]], None] | None = None,
) -> dict[str, str]:
    """Start `wordcrawl up`, crawl one page through it, stop it; check all of it.

    `while_up(banner, processes)` makes the caller's own checks while the stack runs.
    Returns the banner's broker, database and instructor lines, the command lines of the
    processes `up` had started, and all it printed, for the caller's own checks.
    """
    port, flower_port = free_port(), free_port()
    env = {**env, "FLOWER_PORT": str(flower_port)}
    up = Up.start(env, cwd, port)
    try:
        banner = up.banner()
        manager_url = banner["manager"].group(1)
        flower_url, user, password = banner["flower"].groups()
        demo_url = banner["demo"].group(1) + "/"
        assert port_of(manager_url) == port and port_of(flower_url) == flower_port

        def healthy() -> dict | None:
            response = requests.get(manager_url + "/api/health", timeout=10)
            return response.json() if response.ok and response.json()["workers"] == 2 else None

        health = wait_for(healthy, 30, "the manager's health never counted 2 workers", 0.5)
        assert health == {"broker": "ok", "database": "ok", "workers": 2}

        submitted = subprocess.run(
            [*wordcrawl_command(), "submit", demo_url, "--wait"],
            env={**env, "WORDCRAWL_API_URL": manager_url},
            cwd=cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=SUBMIT_TIMEOUT,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        job_id, summary, *word_lines = submitted.stdout.splitlines()
        assert summary.startswith("job done: 1 pages: 1 done"), submitted.stdout
        top = requests.get(f"{manager_url}/api/jobs/{job_id}/words?limit=10", timeout=10).json()
        assert len(top) == 10
        assert [line.split() for line in word_lines] == [[w["word"], str(w["count"])] for w in top]

        workers_api = flower_url + "/api/workers"
        assert requests.get(workers_api, timeout=10).status_code == 401
        wanted = {node_name("w1"), node_name("w2")}

        def flower_lists_the_workers() -> bool:
            response = requests.get(
                workers_api, params={"refresh": 1}, auth=(user, password), timeout=30
            )
            assert response.status_code == 200, response.text
            return set(response.json()) == wanted

        wait_for(flower_lists_the_workers, 30, f"Flower did not list {sorted(wanted)}", 0.5)
        if kill:
            kill_a_worker_mid_crawl(up, env, cwd, manager_url, demo_url)
        if scale:
            add_and_remove_a_worker(env, cwd, manager_url)

        family = psutil.Process(up.process.pid).children(recursive=True)
        commands = [" ".join(proc.cmdline()) for proc in family]
        if while_up is not None:
            while_up(banner, family)
        ports = {port, flower_port, port_of(demo_url)}
        code = up.interrupt()
    finally:
        up.kill_all()

    # The tree held every piece: a stopped piece can only be checked if it was there.
    for piece in ("demo-site", "w1@%h", "w2@%h", "job_tasks beat", "flower", "gunicorn"):
        assert any(piece in command for command in commands), (piece, commands)
    assert code == 0, up.output
    assert "wordcrawl stopped" in up.output
    assert not left_behind(family), f"left running: {left_behind(family, 0)}"
    assert all(port_is_free(p) for p in ports), ports
    return {
        "broker": banner["broker"].group(1),
        "database": banner["database"].group(1),
        "instructor": banner["instructor"].group(1),
        "commands": "\n".join(commands),
        "output": up.output,
    }


def the_guided_run_ends_as_the_readme_says(banner: dict[str, re.Match]) -> None:
    """The README's guided run, steps 2 to 5, on the stack `up` started: a depth-3 crawl of
    its demo site ends as the README says, every number read from the README itself."""
    readme = README.read_text()
    said = int(re.search(r"It ends `done` with (\d+) pages", readme).group(1))
    path, error = re.search(
        r"all `done` but one: `(/\S+)` ends `failed` with `(\w+)`", readme
    ).groups()
    manager_url, demo_url = banner["manager"].group(1), banner["demo"].group(1)
    flower_url, user, password = banner["flower"].groups()

    response = requests.post(  # as the form sends it: depth 3, the other fields' defaults
        manager_url + "/api/jobs", json={"urls": [demo_url + "/"], "depth": 3}, timeout=10
    )
    assert response.status_code == 202, response.text
    job_url = f"{manager_url}/api/jobs/{response.json()['id']}"

    def ended() -> dict | None:
        job = requests.get(job_url, timeout=10).json()
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(ended, SUBMIT_TIMEOUT, "the guided run's crawl did not end", 0.5)
    counts = job["pages"]
    assert job["status"] == "done", job
    assert counts["total"] == said, counts
    assert (counts["done"], counts["failed"]) == (counts["total"] - 1, 1), counts
    pages = requests.get(job_url + "/pages", timeout=10).json()
    assert [(p["url"], p["error"]) for p in pages if p["status"] == "failed"] == [
        (demo_url + path, error)
    ]
    assert {p["depth"] for p in pages} == {0, 1, 2, 3}
    # Step 3: the worker column names both workers; step 5: Flower lists one crawl_pages
    # task per page, with the page's URL, and nothing else.
    assert {p["worker"].split("@")[0] for p in pages} == {"w1", "w2"}

    def listed() -> dict | None:
        tasks = requests.get(flower_url + "/api/tasks", auth=(user, password), timeout=30).json()
        return tasks if {p["task_id"] for p in pages} <= set(tasks) else None

    tasks = wait_for(listed, 30, "Flower did not list a task per page", 0.5)
    assert {task["name"] for task in tasks.values()} == {"job_tasks.tasks.crawl_pages"}
    for page in pages:
        assert page["url"] in tasks[page["task_id"]]["args"], tasks[page["task_id"]]


def workers_command(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run `wordcrawl workers ARGS` as a person does; return what it printed."""
    result = subprocess.run(
        [*wordcrawl_command(), "workers", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def worker_pids(env: dict[str, str], cwd: Path) -> dict[str, int]:
    """Read `wordcrawl workers list`: one `NAME  pid PID` line a worker."""
    pids = {}
    for line in workers_command(env, cwd, "list").splitlines():
        name, label, pid = line.split()
        assert label == "pid", line
        pids[name] = int(pid)
    return pids


def kill_a_worker_mid_crawl(
    up: Up, env: dict[str, str], cwd: Path, manager_url: str, demo_url: str
) -> None:
    """SIGKILL w2 while it runs a page of the demo site: `up` starts it again, and the job
    ends with every page counted once (the page w2 ran comes back after the visibility
    timeout, 3 x WORDCRAWL_TASK_TIME_LIMIT)."""
    started = time.monotonic()
    engine = create_engine(sqlalchemy_url(env["DATABASE_URL"]))
    site = DemoSite()  # the demo site `up` serves: 100 pages, the default
    response = requests.post(
        manager_url + "/api/jobs", json={"urls": [demo_url], "depth": 3}, timeout=10
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def running_on_w2() -> list[str]:
        with engine.connect() as conn:
            return list(
                conn.scalars(
                    text(
                        "SELECT url FROM pages WHERE job_id = :job AND status = 'running' "
                        "AND worker = :node"
                    ),
                    {"job": job_id, "node": node_name("w2")},
                )
            )

    pids = worker_pids(env, cwd)
    assert list(pids) == ["w1", "w2"], pids
    killed = wait_for(running_on_w2, 30, "w2 ran no page of the crawl", interval=0.02)
    os.kill(pids["w2"], signal.SIGKILL)  # as a student does: kill -9 <pid>
    killed_at = time.monotonic()

    wait_for(
        lambda: "worker w2 exited (killed by SIGKILL); starting it again" in up.output,
        10,
        f"wordcrawl up did not restart w2:\n{up.output}",
    )
    restarted = worker_pids(env, cwd)
    assert restarted["w1"] == pids["w1"] and restarted["w2"] != pids["w2"], restarted

    def w2_online() -> bool:
        workers = requests.get(manager_url + "/api/activity", timeout=10).json()["workers"]
        return any(w["name"] == node_name("w2") and w["online"] for w in workers)

    wait_for(w2_online, 30, "the restarted w2 never answered a ping", 0.5)
    online_at = time.monotonic()

    def ended() -> dict | None:
        job = requests.get(f"{manager_url}/api/jobs/{job_id}", timeout=10).json()
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(ended, 90, f"the job did not end:\n{up.output}", 0.5)
    ended_at = time.monotonic()
    assert up.process.poll() is None, up.output  # the stack kept running throughout
    assert job["status"] == "done", job
    pages = job["pages"]
    assert pages["failed"] == 1 and pages["done"] == pages["total"] - 1 > len(killed), job

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, url, status, word_count, attempts FROM pages WHERE job_id = :job"),
            {"job": job_id},
        ).all()
        counted = conn.execute(
            text(
                "SELECT w.page_id, w.word, w.count FROM word_counts w "
                "JOIN pages p ON p.id = w.page_id WHERE p.job_id = :job"
            ),
            {"job": job_id},
        ).all()
    engine.dispose()
    assert len({row.url for row in rows}) == len(rows), "a page was recorded twice"
    words: dict[int, Counter[str]] = {}
    for page_id, word, count in counted:
        words.setdefault(page_id, Counter())[word] += count
    for row in rows:
        if row.status == "failed":
            assert row.url == demo_url + "private/report", row  # robots.txt refuses it
            continue
        expected = site.expected_counts(site.page_number("/" + row.url.removeprefix(demo_url)))
        assert words[row.id] == expected and row.word_count == expected.total(), row.url
    # The pages w2 was running when killed were counted once, like every other: run
    # again (attempts 2), or finished by its pool process before `up` stopped that.
    print("killed mid-page:", {row.url: row.attempts for row in rows if row.url in killed})
    print(
        f"kill step: crawl {killed_at - started:.1f} s before the kill, w2 back online "
        f"{online_at - killed_at:.1f} s after it, the job ended {ended_at - killed_at:.1f} s after"
    )


def add_and_remove_a_worker(env: dict[str, str], cwd: Path, manager_url: str) -> None:
    """`wordcrawl workers add` / `remove` change the running stack's workers."""

    def workers(*args: str) -> str:
        return workers_command(env, cwd, *args)

    def online() -> int:
        return requests.get(manager_url + "/api/health", timeout=10).json()["workers"]

    assert workers("add") == "workers: w1, w2, w3"
    wait_for(lambda: online() == 3, 30, "the third worker never answered", 0.5)
    assert workers("remove") == "workers: w1, w2"
    wait_for(lambda: online() == 2, 30, "the third worker did not go", 0.5)
    assert list(worker_pids(env, cwd)) == ["w1", "w2"]


def database_exists(server_url: str, name: str) -> bool:
    import psycopg2

    with contextlib.closing(psycopg2.connect(server_url)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None


@pytest.fixture
def new_database(services):
    """A database name on the session's PostgreSQL that does not exist yet; dropped after."""
    server_url = make_url(services.postgres_server_url).set(database="postgres")
    server = server_url.render_as_string(hide_password=False)
    name = f"wordcrawl_test_up_{uuid.uuid4().hex[:12]}"
    assert not database_exists(server, name)
    database_url = server_url.set(database=name).render_as_string(hide_password=False)
    yield database_url, server, name
    drop_database(database_url)


def test_up_uses_the_running_servers_and_creates_its_database(services, new_database, tmp_path):
    database_url, server, name = new_database
    broker_url = claim_redis_database(services.redis_server_url)
    env = clean_env(
        CELERY_BROKER_URL=broker_url,
        DATABASE_URL=database_url,
        WORDCRAWL_STATE_DIR=str(tmp_path / "state"),
        # The killed worker's pages come back after 3 x this: 12 s (pages take ~0.1 s).
        WORDCRAWL_TASK_TIME_LIMIT="4",
        WORDCRAWL_WORKER_CONCURRENCY="2",
        # The demo site answers at once: one request to it at a time keeps the crawl long
        # enough (pages wait for the site, running) to kill a worker in the middle of it.
        WORDCRAWL_PER_HOST_CONCURRENCY="1",
    )
    try:
        started = time.monotonic()
        lines = run_stack_once(env, tmp_path, scale=True, kill=True)
        print(f"wordcrawl up with running servers: {time.monotonic() - started:.1f} s")
    finally:
        release_redis_database(broker_url)

    assert lines["broker"].endswith("(already running)"), lines
    assert lines["database"].endswith("(already running)"), lines
    # This machine's Redis may have no maxmemory; if it says so, `up` says it too.
    unbounded = redis_maxmemory(broker_url) == 0
    assert ("this Redis has no maxmemory" in lines["output"]) == unbounded, lines["output"]
    kept = json.loads((tmp_path / "state" / "secrets.json").read_text())
    assert lines["instructor"] == kept["admin_password"]
    assert database_exists(server, name)  # `up` created it
    assert "redis-server" not in lines["commands"] and "postgres" not in lines["commands"]
    assert not (tmp_path / "state" / "postgres").exists()
    assert not (tmp_path / "state" / "redis").exists()


def modes_above(path: Path) -> dict[str, str]:
    """The mode of every folder above `path`, up to /."""
    return {str(folder): oct(folder.stat().st_mode) for folder in path.parents}


def test_up_starts_embedded_servers_when_none_answers():
    """From a private folder (mode 700, as `mktemp -d` makes one for a fresh clone): the
    servers `up` starts require the passwords it keeps in its state folder, and no folder
    above the state folder changes mode (as root, PostgreSQL runs as a user of its own)."""
    private = Path(tempfile.mkdtemp(prefix="wordcrawl-private-"))
    state_dir = private / "state"
    before = modes_above(state_dir)
    redis_port = free_port()
    postgres_port = wait_for(lambda: (p := free_port()) != redis_port and p, 5, "a second port")
    env = clean_env(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{postgres_port}/wordcrawl",
        WORDCRAWL_STATE_DIR=str(state_dir),
    )

    def passwords_required(banner: dict[str, re.Match], processes: list[psutil.Process]) -> None:
        kept = json.loads((state_dir / "secrets.json").read_text())
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port).ping()
        client = redis.Redis(port=redis_port, password=kept["redis_password"])
        assert client.ping()
        bounds = client.config_get("maxmemory*")
        client.close()
        assert (bounds["maxmemory"], bounds["maxmemory-policy"]) == ("268435456", "volatile-lru")
        address = f"127.0.0.1:{postgres_port}/wordcrawl"
        with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
            psycopg2.connect(f"postgresql://postgres@{address}", connect_timeout=5)
        psycopg2.connect(f"postgresql://postgres:{kept['postgres_password']}@{address}").close()
        # The manager got the instructor's password, in its environment like the URLs'.
        manager = next(p for p in processes if "gunicorn" in " ".join(p.cmdline()))
        admin = manager.environ()["WORDCRAWL_ADMIN_PASSWORD"]
        assert admin == banner["instructor"].group(1) == kept["admin_password"]
        for proc in processes:  # every user sees command lines with `ps`
            command = " ".join(proc.cmdline())
            assert (
                kept["redis_password"] not in command and kept["postgres_password"] not in command
            )

    try:
        started = time.monotonic()

        def while_up(banner: dict[str, re.Match], processes: list[psutil.Process]) -> None:
            passwords_required(banner, processes)
            the_guided_run_ends_as_the_readme_says(banner)  # a fresh laptop's defaults

        lines = run_stack_once(env, private, while_up=while_up)
        print(f"wordcrawl up with embedded servers: {time.monotonic() - started:.1f} s")

        assert f"127.0.0.1:{redis_port}" in lines["broker"] and "started by" in lines["broker"]
        assert f"127.0.0.1:{postgres_port}" in lines["database"]
        assert "started by" in lines["database"]
        assert "redis-server" in lines["commands"] and "postgres -D" in lines["commands"]
        assert (state_dir / "postgres" / "PG_VERSION").exists()
        assert (state_dir / "redis").is_dir()
        assert port_is_free(redis_port) and port_is_free(postgres_port)
        kept = json.loads((state_dir / "secrets.json").read_text())
        assert kept["redis_password"] not in lines["output"]  # printed as ***
        assert kept["postgres_password"] not in lines["output"]
        assert stat.S_IMODE((state_dir / "secrets.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        assert modes_above(state_dir) == before
    finally:
        data = state_dir / "postgres"
        if data.is_symlink():  # as root: the data's folder, outside the private one
            shutil.rmtree(data.resolve().parent, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


def test_init_db_is_safe_to_run_twice(new_database, tmp_path):
    database_url, _server, _name = new_database
    env = clean_env(DATABASE_URL=database_url)

    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [*wordcrawl_command(), "init-db"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout)

    assert outputs[0] == "created the database\ntables ready\n"
    assert outputs[1] == "tables ready\n"
