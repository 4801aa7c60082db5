"""The servers wordcrawl starts itself require their password and change nothing above
their folder.

Each test starts a real embedded server with its state in a private folder (mode 700, as
`mktemp -d` makes one, or a home folder): as the user running the suite (as root,
PostgreSQL then runs as its own system user, with its data outside the private folder),
and, when the suite runs as root, as a throwaway normal user too. A connection without the
password, or with a wrong one, is refused; one with it is accepted; and the folders above
the state folder keep their modes.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from as_user import blocking_folders, can_unshare, command_as
from embedded_check import check

from wordcrawl.local.embedded import EmbeddedRedis
from wordcrawl.local.postgres_user import SYSTEM_USER
from wordcrawl.local.probes import free_port

pytestmark = pytest.mark.slow  # starts embedded Redis and PostgreSQL

ROOT = os.geteuid() == 0
CHECKOUT = Path(__file__).resolve().parents[2]


def modes_above(path: Path) -> dict[str, str]:
    """The mode of every folder above `path`, up to /."""
    return {str(folder): oct(folder.stat().st_mode) for folder in path.parents}


@pytest.fixture
def private_folder() -> Iterator[Path]:
    """A new folder only its owner may enter, as `mktemp -d` makes (in /tmp, not in pytest's
    own folder, so that another user can be given one)."""
    folder = Path(tempfile.mkdtemp(prefix="wordcrawl-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def assert_refused_then_accepted(report: dict) -> None:
    assert "no password supplied" in report["no_password"], report
    assert "password authentication failed" in report["wrong_password"], report
    assert report["right_password"] == "", report
    assert report["restart"] == "", report


def test_embedded_redis_requires_its_password_from_a_private_config_file(private_folder):
    state = private_folder / "state"
    before = modes_above(state)
    server = EmbeddedRedis(state / "redis", free_port(), maxmemory="256mb")
    try:
        server.start()
        for url in (f"redis://127.0.0.1:{server.port}/0", f"redis://:no@127.0.0.1:{server.port}"):
            with pytest.raises(redis.AuthenticationError):
                redis.Redis.from_url(url).ping()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.ping()
        config = client.config_get("maxmemory*")
        client.close()
        command_line = " ".join(psutil.Process(server.process.pid).cmdline())
    finally:
        server.stop()

    # Caches (keys with a TTL) give way first when it is full, never the task messages.
    assert (config["maxmemory"], config["maxmemory-policy"]) == (str(256 * 2**20), "volatile-lru")
    assert server.password not in command_line  # `ps` shows it to every user
    assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600
    assert modes_above(state) == before


def test_embedded_postgres_starts_from_a_private_folder(private_folder):
    state = private_folder / "state"
    before = modes_above(state)

    report = check(state, secrets.token_urlsafe(24))

    assert_refused_then_accepted(report)
    data = Path(report["data"])
    if ROOT:  # PostgreSQL refuses root: it ran as its own user, from a folder it may reach
        assert report["server_user"] == SYSTEM_USER
        assert report["linked"] and not data.is_relative_to(private_folder), report
    else:  # a normal user's server is theirs, its data in the state folder
        assert report["server_user"] == report["runner"]
        assert data == state / "postgres" and not report["linked"], report
    assert modes_above(state) == before
    assert not data.exists()  # discarded


@pytest.fixture
def normal_user() -> Iterator[str]:
    """A throwaway system user with no home and no shell."""
    if not ROOT:
        pytest.skip("run as a normal user already: the test above covers it")
    name = f"wordcrawl-t{secrets.token_hex(4)}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    yield name
    subprocess.run(["userdel", name], check=False, capture_output=True)


def test_embedded_postgres_starts_from_a_private_folder_of_a_normal_user(
    private_folder, normal_user
):
    user = pwd.getpwnam(normal_user)
    shutil.chown(private_folder, user.pw_uid, user.pw_gid)
    state = private_folder / "state"
    before = modes_above(state)
    command = [sys.executable, str(Path(__file__).with_name("embedded_check.py")), str(state)]
    needed = [CHECKOUT, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve()]
    as_user: dict = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    if blocking_folders(needed):
        # This checkout or its Python is private to root, where a normal user's own would
        # be theirs: the user runs it in a view where those folders may be passed.
        if not can_unshare():
            pytest.skip(f"{blocking_folders(needed)} are private and no mount namespace here")
        handles = private_folder.with_name(private_folder.name + "-handles")
        handles.mkdir(mode=0o700)
        command, as_user = command_as(user, command, needed, handles), {}

    try:
        result = subprocess.run(
            command,
            **as_user,
            cwd=private_folder,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(private_folder),
                "WORDCRAWL_CHECK_PASSWORD": secrets.token_urlsafe(24),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(private_folder.with_name(private_folder.name + "-handles"), True)

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert_refused_then_accepted(report)
    assert report["runner"] == report["server_user"] == normal_user
    assert Path(report["data"]) == state / "postgres" and not report["linked"], report
    assert modes_above(state) == before
