"""`wordcrawl up`: start the whole stack on one machine, and stop all of it on Ctrl-C.

The order is the flow's: broker and database first (found or started, see services.py),
then the tables, the demo site, the workers, beat, Flower and the manager. Every piece runs in
a process group of its own, so Ctrl-C reaches only this supervisor, which then stops the
pieces in reverse order: workers get a warm shutdown (they finish or hand back their
tasks), servers a clean stop, and anything left is killed, so no process stays behind.

A worker that exits on its own (killed in class, say) is started again under its name, as
Compose's restart policy would; one that keeps dying right after it starts (a configuration
problem) stops the stack, as any other piece that exits does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from job_tasks.settings import Settings, format_allowed_hosts
from job_viewer import flower_command
from job_worker import beat_command, worker_command

from . import state_secrets
from .services import (
    ServerProcess,
    ServiceError,
    describe,
    embedded_postgres_for,
    embedded_redis_for,
    free_port,
    port_is_free,
    port_open,
    redis_maxmemory,
    wait_until,
)

DEMO_SITE_PORT = 8001
STARTUP_TIMEOUT = 90.0
# A worker that exits this many times within this many seconds is not restarted again.
WORKER_EXITS_ALLOWED = 3
WORKER_EXITS_WINDOW = 60.0


class WorkerControl:
    """How `wordcrawl workers add/remove` talks to a running `wordcrawl up`.

    `up` publishes its pid, its workers' names and their pids in a small JSON file of its
    state folder; the command writes the number of workers it wants beside it and sends
    SIGUSR1; `up` starts or stops (warm shutdown) workers to match, and publishes the new
    list.
    """

    def __init__(self, state_dir: Path) -> None:
        self.status_path = state_dir / "up.json"
        self.wanted_path = state_dir / "workers.wanted"

    def publish(self, pid: int, workers: dict[str, int]) -> None:
        """Write `up`'s pid and its workers, name to pid (`workers` keeps the names alone)."""
        status = {"pid": pid, "workers": list(workers), "worker_pids": workers}
        temporary = self.status_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status))
        temporary.replace(self.status_path)  # readers never see half a file

    def status(self) -> dict | None:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def ask(self, wanted: int) -> None:
        status = self.status()
        if status is None:
            raise ServiceError(f"no `wordcrawl up` is running here ({self.status_path} missing)")
        self.wanted_path.write_text(str(wanted))
        try:
            os.kill(status["pid"], signal.SIGUSR1)
        except ProcessLookupError as err:
            raise ServiceError("the `wordcrawl up` that wrote up.json is gone") from err

    def wanted(self) -> int | None:
        try:
            return int(self.wanted_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def clear(self) -> None:
        self.status_path.unlink(missing_ok=True)
        self.wanted_path.unlink(missing_ok=True)


@dataclass
class Child:
    """A piece of the stack running as a child process."""

    name: str
    process: subprocess.Popen
    log_path: Path
    stop_timeout: float = 10.0

    def stop(self) -> None:
        """Send SIGTERM, wait, then kill the child's whole process group if needed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop in {self.stop_timeout:g} s; killing it")
        _kill_group(self.process.pid)  # pool processes, gunicorn workers: nothing stays


class Stack:
    """The processes of one `wordcrawl up`, started and stopped together."""

    def __init__(
        self, settings: Settings, workers: int = 2, port: int = 5000, demo_port: int = 0
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.port = port
        self.demo_port = demo_port
        self.state_dir = Path(settings.state_dir).resolve()
        self.log_dir = self.state_dir / "logs"
        self.servers: list[ServerProcess] = []
        self.children: list[Child] = []
        self.env: dict[str, str] = {}
        self.stopping = False
        self.worker_children: list[Child] = []
        self.worker_numbers = 0  # the last n of a worker named wn
        self.worker_exits: dict[str, list[float]] = {}  # name: when it exited on its own
        self.control = WorkerControl(self.state_dir)
        self.rescale = False  # set by SIGUSR1: `wordcrawl workers add/remove` asked

    def run(self) -> None:
        """Start everything, print where it is, and wait for Ctrl-C (or SIGTERM)."""
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGUSR1, self._ask_rescale)
        exit_code = 0
        try:
            self._start()
            self._watch()
        except KeyboardInterrupt:
            print("\nstopping wordcrawl...")
        except ServiceError as err:
            print(f"\nwordcrawl up failed: {err}", file=sys.stderr)
            exit_code = 1
        finally:
            self._stop()
        if exit_code:
            raise SystemExit(exit_code)

    @property
    def manager_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start everything and return: for a program that drives the stack itself (the
        whole-stack benchmarks). Call stop() afterwards, also when start() failed."""
        self._start()

    def stop(self) -> None:
        """Stop everything started so far; the caller's signal handlers stay as they were."""
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        try:
            self._stop()
        finally:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])

    def _start(self) -> None:
        # The state folder holds passwords: only its owner may enter it (0700).
        secrets_kept = state_secrets.load_or_make(self.state_dir)
        self.log_dir.mkdir(exist_ok=True)
        if not port_is_free(self.port):
            raise ServiceError(f"port {self.port} is taken: choose another with --port")
        flower_port = int(os.environ.get("FLOWER_PORT", "5555"))
        if not port_is_free(flower_port):
            raise ServiceError(f"Flower's port {flower_port} is taken: set FLOWER_PORT")

        redis_server = embedded_redis_for(
            self.settings.broker_url,
            self.state_dir / "redis",
            secrets_kept["redis_password"],
            self.settings.redis_maxmemory,
        )
        broker_url = self._start_server(redis_server) or self.settings.broker_url
        pg_server = embedded_postgres_for(
            self.settings.database_url,
            self.state_dir / "postgres",
            secrets_kept["postgres_password"],
        )
        database_url = self._start_server(pg_server) or self.settings.database_url

        # The demo site: where asked, else 8001 when free, else any free port.
        demo_port = self.demo_port or (
            DEMO_SITE_PORT if port_is_free(DEMO_SITE_PORT) else free_port()
        )
        if not port_is_free(demo_port):
            raise ServiceError(f"the demo site's port {demo_port} is taken: use --demo-port")
        allowed = self.settings.allowed_hosts | {("127.0.0.1", demo_port), ("localhost", demo_port)}
        flower_auth = os.environ.get("FLOWER_BASIC_AUTH") or f"admin:{secrets.token_urlsafe(12)}"
        # The instructor's password stays the same from one start to the next (secrets.json).
        admin_password = self.settings.admin_password or secrets_kept["admin_password"]
        manager_url = self.manager_url
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": database_url,
            "WORDCRAWL_ALLOWED_HOSTS": format_allowed_hosts(frozenset(allowed)),
            "WORDCRAWL_API_URL": manager_url,
            "FLOWER_BASIC_AUTH": flower_auth,
            "WORDCRAWL_ADMIN_PASSWORD": admin_password,
        }

        cli = [sys.executable, "-m", "wordcrawl"]
        self._run_once("init-db", [*cli, "init-db"])
        demo = self._spawn("demo-site", [*cli, "demo-site", "--port", str(demo_port)])
        wait_until(lambda: port_open(demo_port), 15, "the demo site", demo.process)
        for _ in range(self.workers):
            self._add_worker()  # each takes both queues, crawl and housekeeping
        self._spawn("beat", beat_command())  # starts scheduled runs
        flower_db = self.state_dir / "flower" / "flower.db"
        flower_db.parent.mkdir(parents=True, exist_ok=True)
        flower = self._spawn("flower", flower_command(flower_port, flower_db))
        manager = self._spawn("manager", [*cli, "serve", "--port", str(self.port)])

        wait_until(
            lambda: _answers(manager_url + "/"), STARTUP_TIMEOUT, "the manager", manager.process
        )
        wait_until(lambda: port_open(flower_port), STARTUP_TIMEOUT, "Flower", flower.process)
        wait_until(
            lambda: self._workers_online(manager_url) >= self.workers,
            STARTUP_TIMEOUT,
            "the workers",
        )

        # FLOWER_BASIC_AUTH may list several user:password pairs; show the first.
        user, _, password = flower_auth.split(",")[0].partition(":")
        print(
            "\nwordcrawl is up\n"
            f"  web form      {manager_url}/\n"
            f"  JSON API      {manager_url}/api/jobs   (health: {manager_url}/api/health)\n"
            f"  Flower        http://127.0.0.1:{flower_port}/   user {user}  password {password}\n"
            f"  instructor    user admin  password {admin_password}   (may cancel any job)\n"
            f"  demo site     http://127.0.0.1:{demo_port}/   (the only site up lets workers "
            "fetch on this machine; try it in the form)\n"
            f"  broker        {describe(broker_url)}{_origin(redis_server)}\n"
            f"{_unbounded_note(broker_url) if redis_server is None else ''}"
            f"  database      {describe(database_url)}{_origin(pg_server)}\n"
            f"  workers       {', '.join(self.worker_names())}   "
            "(more: wordcrawl workers add; fewer: wordcrawl workers remove)\n"
            f"  logs          {self.log_dir}/\n"
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        self.control.publish(os.getpid(), self.worker_pids())

    def _start_server(self, server: ServerProcess | None) -> str | None:
        """Start an embedded server (registered first, so Ctrl-C during start stops it)."""
        if server is None:
            return None
        print(f"starting {server.name} (data in {server.data_dir})...", flush=True)
        self.servers.append(server)
        server.start()
        return server.url

    def worker_names(self) -> list[str]:
        return [child.name.removeprefix("worker ") for child in self.worker_children]

    def worker_pids(self) -> dict[str, int]:
        """Return each worker's name and the pid of its main process (`celery worker`)."""
        return {
            child.name.removeprefix("worker "): child.process.pid for child in self.worker_children
        }

    def _add_worker(self) -> None:
        self.worker_numbers += 1
        self.worker_children.append(self._spawn_worker(f"w{self.worker_numbers}"))

    def _spawn_worker(self, name: str) -> Child:
        # Workers get time for a warm shutdown: finish the page, or hand it back.
        return self._spawn(f"worker {name}", worker_command(name, self.settings), 30.0)

    def _restart_worker(self, child: Child) -> None:
        """Start a worker that exited on its own again, under its name (its node name)."""
        name = child.name.removeprefix("worker ")
        now = time.monotonic()
        exits = [t for t in self.worker_exits.get(name, []) if now - t < WORKER_EXITS_WINDOW]
        self.worker_exits[name] = [*exits, now]
        if len(self.worker_exits[name]) >= WORKER_EXITS_ALLOWED:
            raise ServiceError(
                f"{child.name} exited {WORKER_EXITS_ALLOWED} times within "
                f"{WORKER_EXITS_WINDOW:g} s ({_how_it_ended(child.process.returncode)}); "
                f"see {child.log_path}\n{_tail(child.log_path)}"
            )
        print(
            f"{child.name} exited ({_how_it_ended(child.process.returncode)}); starting it again",
            flush=True,
        )
        # Its pool processes may outlive it: they go with its process group, so the new
        # worker is the only node of that name (Celery expects node names to be unique).
        child.stop()
        self.children.remove(child)
        index = self.worker_children.index(child)
        self.worker_children[index] = self._spawn_worker(name)
        self.control.publish(os.getpid(), self.worker_pids())

    def _remove_worker(self) -> None:
        child = self.worker_children.pop()
        self.children.remove(child)
        child.stop()  # SIGTERM: a warm shutdown, nothing is lost

    def _ask_rescale(self, signum: int, frame: object) -> None:
        self.rescale = True  # acted on in _watch, not inside the signal handler

    def _apply_rescale(self) -> None:
        self.rescale = False
        wanted = self.control.wanted()
        if wanted is None:
            return
        while len(self.worker_children) < wanted:
            self._add_worker()
        while len(self.worker_children) > max(1, wanted):
            self._remove_worker()
        print(f"workers now: {', '.join(self.worker_names())}", flush=True)
        self.control.publish(os.getpid(), self.worker_pids())

    def _watch(self) -> None:
        """Wait until Ctrl-C; restart workers that die; if another piece dies, stop all."""
        while True:
            if self.rescale:
                self._apply_rescale()
            for child in list(self.children):
                if child.process.poll() is None:
                    continue
                if child in self.worker_children:
                    self._restart_worker(child)
                else:
                    raise ServiceError(
                        f"{child.name} exited with code {child.process.returncode}; "
                        f"see {child.log_path}\n{_tail(child.log_path)}"
                    )
            time.sleep(0.5)

    def _stop(self) -> None:
        # A second Ctrl-C must not interrupt the shutdown and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(self.children):
            child.stop()
        for server in reversed(self.servers):
            server.stop()
        self.control.clear()
        print("wordcrawl stopped", flush=True)

    def _spawn(self, name: str, argv: list[str], stop_timeout: float = 10.0) -> Child:
        log_path = self.log_dir / f"{name.replace(' ', '-')}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        child = Child(name, process, log_path, stop_timeout)
        self.children.append(child)
        return child

    def _run_once(self, name: str, argv: list[str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            result = subprocess.run(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if result.returncode:
            raise ServiceError(f"{name} failed; see {log_path}\n{_tail(log_path)}")

    @staticmethod
    def _workers_online(manager_url: str) -> int:
        try:
            return int(requests.get(manager_url + "/api/health", timeout=5).json()["workers"])
        except (requests.RequestException, ValueError, KeyError):
            return 0


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # ProcessLookupError: the group is empty
        os.killpg(pgid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def _origin(server: ServerProcess | None) -> str:
    if server is None:
        return "   (already running)"
    return f"   (started by wordcrawl up; data in {server.data_location})"


def _unbounded_note(broker_url: str) -> str:
    """Say so when a Redis we did not start has no maxmemory (nothing when it will not say)."""
    if redis_maxmemory(broker_url) != 0:
        return ""
    return (
        "                (this Redis has no maxmemory: once full, it takes no more tasks; "
        "see docs/operations.md)\n"
    )


def _how_it_ended(returncode: int) -> str:
    """Say how a process ended: "exit code 1", or "killed by SIGKILL" (Popen: -9)."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
