"""Hold every request of a page to the page's deadline, whatever the server sends.

The timeouts of requests and urllib3 bound each wait for bytes, not a whole answer: a
server sending one byte every few tenths of a second, in its headers, in a chunk-size
line, or as compressed data that inflates to nothing, would keep a worker for hours. So
while `fetch.py` waits for an answer, a timer waits for the page's deadline; if the
request has not ended by then, the timer shuts down the socket of the connection in use.
The read that is blocked returns at once, and the fetcher reports a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

_local = threading.local()  # the deadline of the request this thread is making, if any


class RequestDeadline:
    """A timer that cuts the connections of one request when its deadline passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # a time.monotonic() value
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> RequestDeadline:
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
        _local.current = None

    def watch(self, sock: socket.socket) -> None:
        """Cut this socket when the deadline passes, or now if it has passed."""
        with self._lock:
            if self.expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def watch_socket(sock: socket.socket | None) -> None:
    """Put the socket of a request about to wait for its answer under this thread's deadline.

    The socket itself, not its connection: http.client lets go of the connection's socket
    when an answer ends at close, while the answer is still being read from it.
    """
    current: RequestDeadline | None = getattr(_local, "current", None)
    if current is not None and sock is not None:
        current.watch(sock)


def _shut(sock: socket.socket) -> None:
    # shutdown (not close) is safe while another thread reads the socket: its read returns
    # at once. The plain socket method, so that a TLS socket is cut the same way.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
