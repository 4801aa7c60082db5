"""The passwords `wordcrawl up` makes, kept in its state folder from one start to the next.

Its own PostgreSQL and Redis require a password, and the instructor logs in with one. Each
is made at the first start (`secrets.token_urlsafe`: letters, digits, "-" and "_", so it
fits in a URL as it is) and read back at every later start: the embedded PostgreSQL's
data already holds its password, and an instructor's login outlives a restart. The file is
readable by its owner only (0600), in a state folder only its owner may enter (0700).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from .probes import ServiceError

SECRETS_FILE = "secrets.json"
NAMES = ("postgres_password", "redis_password", "admin_password")


def make_private_folder(path: Path) -> Path:
    """Create `path` (and its parents) if needed, and let only its owner enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # a state folder made by an older wordcrawl was 0755
    return path


def load_or_make(state_dir: Path) -> dict[str, str]:
    """Return the state folder's passwords, making (and saving) the ones it lacks."""
    path = make_private_folder(state_dir) / SECRETS_FILE
    try:
        kept = json.loads(path.read_text())
    except FileNotFoundError:
        kept = {}
    except ValueError as err:
        raise ServiceError(f"{path} is not JSON: repair it, or delete it") from err
    missing = [name for name in NAMES if not kept.get(name)]
    if missing:
        kept.update({name: secrets.token_urlsafe(24) for name in missing})
        write_private(path, json.dumps(kept, indent=2) + "\n")
    path.chmod(0o600)
    return kept


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner may read, replacing it whole (never half written)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL with mode 0600: the file is private from its first byte, and a file someone
    # else planted under that name is never written through.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
