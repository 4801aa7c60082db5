"""Start one worker: `python -m job_worker [NAME]` (the worker container's command)."""

import os
import socket
import sys

from job_tasks.settings import get_settings

from .command import worker_command

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "worker"
    argv = worker_command(name, get_settings())
    os.execv(argv[0], argv)
    raise SystemExit(f"could not start the worker on {socket.gethostname()}")
