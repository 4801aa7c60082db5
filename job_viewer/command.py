"""Build the command line that starts Flower for wordcrawl."""

from __future__ import annotations

import sys
from pathlib import Path

FLOWER_CONFIG = Path(__file__).with_name("flowerconfig.py")


def flower_command(port: int, db_path: Path | str, address: str = "127.0.0.1") -> list[str]:
    """Return argv for `celery -A job_tasks flower` with wordcrawl's configuration.

    Credentials come from FLOWER_BASIC_AUTH in the environment, never from argv (where
    any user of the machine could read them with `ps`).
    """
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "job_tasks",
        "flower",
        f"--conf={FLOWER_CONFIG}",
        f"--port={port}",
        f"--address={address}",
        f"--db={db_path}",
    ]
