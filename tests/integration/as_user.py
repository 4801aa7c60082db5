"""Run this checkout's code as another user, even when the checkout is private to root.

A normal user's own clone and Python are theirs to read. A clone root made in a private
folder (`mktemp -d`, root's home), or a Python under /root, is not: another user cannot
even start it. So the command runs in a mount namespace of its own (`unshare --mount`),
where each folder on the way that others may not pass is covered by a passable one (a
tmpfs, mode 755) holding the same entries (bind mounts of them). Nothing changes on disk
or for any other process, and the command itself runs with no privilege (`setpriv`).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import subprocess
from pathlib import Path


def blocking_folders(paths: list[Path]) -> list[Path]:
    """The folders from / down to `paths` (those included) that others may not list and
    pass (o+rx), outermost first."""
    folders = {folder for path in paths for folder in (path, *path.parents)}
    return sorted(
        (f for f in folders if f.stat().st_mode & 0o005 != 0o005), key=lambda f: len(f.parts)
    )


def can_unshare() -> bool:
    """Say whether this process may make a mount namespace (root, with CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def command_as(user: pwd.struct_passwd, argv: list[str], needed: list[Path], handles: Path):
    """Return the command line that runs `argv` as `user`, able to reach `needed`.

    `handles` is an empty folder of root's, used inside the namespace only.
    """
    drop = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    quote = shlex.quote
    lines = ["set -e", f"mount -t tmpfs tmpfs {quote(str(handles))}"]
    for number, folder in enumerate(blocking_folders(needed)):
        handle = handles / str(number)
        lines += [
            f"mkdir {quote(str(handle))}",
            f"mount --bind {quote(str(folder))} {quote(str(handle))}",
            f"mount -t tmpfs -o mode=755 tmpfs {quote(str(folder))}",
        ]
        for name in sorted(os.listdir(folder)):
            entry, source = quote(str(folder / name)), quote(str(handle / name))
            if (folder / name).is_symlink():
                lines.append(f"ln -s {quote(os.readlink(folder / name))} {entry}")
                continue
            make = "mkdir" if stat.S_ISDIR((folder / name).stat().st_mode) else "touch"
            lines += [f"{make} {entry}", f"mount --bind {source} {entry}"]
    lines.append(f"exec {shlex.join([*drop, '--', *argv])}")
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines)]
