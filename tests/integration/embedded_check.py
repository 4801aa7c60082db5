"""Start the embedded PostgreSQL from a state folder, try its door, and say what happened.

Used by test_embedded_servers.py in its own process, and run as a script by a throwaway
normal user (`python embedded_check.py STATE_DIR`, the password in WORDCRAWL_CHECK_PASSWORD,
never on a command line): the same checks, whoever runs them.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from pathlib import Path

import psycopg2

from wordcrawl.local.embedded import EmbeddedPostgres
from wordcrawl.local.probes import free_port


def connect_error(url: str) -> str:
    """Connect to `url`; return "" if it worked, else the server's reason."""
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.OperationalError as err:
        return str(err)
    return ""


def check(state_dir: Path, password: str) -> dict:
    """Start, try without, with a wrong and with the right password, restart; report."""
    server = EmbeddedPostgres(state_dir / "postgres", free_port(), "postgres", password)
    try:
        server.start()
        address = f"127.0.0.1:{server.port}/postgres"
        report = {
            "no_password": connect_error(f"postgresql://postgres@{address}"),
            "wrong_password": connect_error(f"postgresql://postgres:wrong@{address}"),
            "right_password": connect_error(f"postgresql://postgres:{password}@{address}"),
            "server_user": pwd.getpwuid(os.stat(server.data_location).st_uid).pw_name,
            "runner": pwd.getpwuid(os.geteuid()).pw_name,
            "data": str(server.data_location),
            "linked": server.data_dir.is_symlink(),
        }
        server.stop()
        # A second start, as `wordcrawl up` the next day: same data, same password.
        again = EmbeddedPostgres(state_dir / "postgres", free_port(), "postgres", password)
        try:
            again.start()
            report["restart"] = connect_error(again.url)
        finally:
            again.stop()
    finally:
        server.stop()
        server.discard()
    return report


if __name__ == "__main__":
    print(json.dumps(check(Path(sys.argv[1]), os.environ["WORDCRAWL_CHECK_PASSWORD"])))
