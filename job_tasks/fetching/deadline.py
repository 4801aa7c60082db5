"""Hold every step of a page's fetch to the page's deadline, whatever the server sends.

The timeouts of requests and urllib3 bound each wait for bytes, not a whole page: a server
sending one byte every few seconds, in its TLS handshake, its headers or its body, would
keep a worker for hours, and Celery's threads pool enforces no time limit at all. So
`fetch.py` opens one `PageDeadline` per page, and every step runs under it:
- the name lookup runs in a helper thread that the page stops waiting for at the
  deadline (`getaddrinfo` itself cannot be interrupted);
- the connect waits at most the time left;
- every socket is watched from the moment it is created (guard.py), so that when the
  deadline passes a timer shuts it down: the read that is blocked, in the TLS handshake
  as in the body, returns at once, and the fetcher reports a timeout.
robots.txt and redirects are fetched under the same deadline as the page itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

_local = threading.local()  # the deadline of the page this thread is fetching, if any


class PageDeadline:
    """A timer that cuts the connections of one page's fetch when its deadline passes."""

    def __init__(self, deadline: float) -> None:
        self.at = deadline  # a time.monotonic() value
        self.expired = False
        self._watched: list[socket.socket] = []  # duplicates of the page's sockets
        self._lock = threading.Lock()
        self._ended = False
        self._previous: PageDeadline | None = None
        self._timer = threading.Timer(self.time_left(), self._expire)
        self._timer.daemon = True

    def time_left(self) -> float:
        """Return the seconds left before the deadline (0 once it has passed)."""
        return max(0.0, self.at - time.monotonic())

    def __enter__(self) -> PageDeadline:
        self._previous = getattr(_local, "current", None)
        _local.current = self
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        _local.current = self._previous
        with self._lock:
            self._ended = True
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()  # only the duplicate: the connection stays open for the next page

    def watch(self, sock: socket.socket) -> None:
        """Cut this socket when the deadline passes, or now if it has passed.

        A duplicate of the socket's descriptor is kept, not the socket object: the TLS
        layer takes the descriptor over from the object it was given (which then answers
        to nothing), and http.client lets go of its socket when an answer ends at close.
        Shutting down the duplicate cuts the one connection behind both.
        """
        try:  # os.dup: a TLS socket refuses dup(), but its descriptor is a plain one
            duplicate = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:  # closed already: nothing left to cut
            return
        with self._lock:
            if not self._ended and not self.expired:
                self._watched.append(duplicate)
                return
            cut_now = self.expired
        if cut_now:
            _shut(duplicate)
        duplicate.close()

    def _expire(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.expired = True
            for sock in self._watched:
                _shut(sock)


def current() -> PageDeadline | None:
    """Return the deadline of the page this thread is fetching, if any."""
    return getattr(_local, "current", None)


def watch_socket(sock: socket.socket | None) -> None:
    """Put a socket under this thread's page deadline, if there is one."""
    deadline = current()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


def time_left(default: float | None) -> float | None:
    """Return the seconds left to this thread's page, or `default` outside of a page."""
    deadline = current()
    return default if deadline is None else deadline.time_left()


def call_with_timeout(function: Callable[[], Any], timeout: float | None) -> Any:
    """Run a call that cannot be interrupted (a name lookup) in a helper thread, and wait
    for it at most `timeout` seconds; raise TimeoutError past that.

    A helper abandoned at the timeout ends on its own when the call returns (the system
    resolver gives up after its own timeouts): nothing else waits for it.
    """
    if timeout is None:
        return function()
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as err:  # handed to the waiting thread, raised there
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=run, name="lookup", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"no answer within {timeout:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _shut(sock: socket.socket) -> None:
    # shutdown (not close) is safe while another thread reads the connection: its read
    # returns at once. The plain socket method, so that a TLS socket is cut the same way.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
