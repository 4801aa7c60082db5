"""Serve several demo sites from one process, one port each: the web of the benchmarks.

`python -m wordcrawl.bench.sites PORT [PORT...] --pages N --fanout F --latency-ms MS`
serves the same demo site (wordcrawl/demo_site.py) on each port of 127.0.0.1. Each port is
its own host for the per-host limit and for robots.txt, so thirty ports are thirty sites
for the classroom benchmark, in one process instead of thirty. It runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from ..demo_site import DemoServer, DemoSite
from ..local.services import free_port, port_open


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ports", nargs="+", type=int)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--fanout", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(argv)
    site = DemoSite(pages=args.pages, fanout=args.fanout, latency_ms=args.latency_ms)
    servers = [DemoServer(site, "127.0.0.1", port) for port in args.ports]
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    for server in servers:
        server.start_in_thread()
    print(f"{len(servers)} demo sites of {site.pages} pages ready", flush=True)
    stopped.wait()
    for server in servers:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def serve_sites(site: DemoSite, count: int, log_path: Path) -> Iterator[list[str]]:
    """Serve `site` on `count` free ports from a process of its own; yield their root URLs."""
    ports = [free_port() for _ in range(count)]
    argv = [sys.executable, "-m", "wordcrawl.bench.sites", *map(str, ports)]
    argv += ["--pages", str(site.pages), "--fanout", str(site.fanout)]
    argv += ["--latency-ms", str(site.latency_ms)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        from .speed import wait_until

        # It renders its pages before it opens its ports: allow time per page.
        wait_until(
            lambda: all(port_open(port) for port in ports),
            15 + site.pages / 500,
            f"the demo sites did not start; see {log_path}",
            process,
        )
        yield [f"http://127.0.0.1:{port}/" for port in ports]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
