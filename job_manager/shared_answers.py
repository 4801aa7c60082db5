"""Answers many requests share: computed at most once every few seconds per process.

A page open in thirty browsers asks the same question thirty times a second or more
(the dashboard's GET /api/activity, Prometheus's /metrics): the first request computes the
answer, and the others, arriving meanwhile or within the next `seconds`, get that same
answer instead of reading the tables again. The lock makes requests that arrive together
wait for one computation, so a flood of them costs one, however many threads serve it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class SharedAnswers:
    """The latest answer to each question (a key), reused for `seconds` after it was made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, seconds: float, compute: Callable[[], Any]) -> Any:
        """Return the answer to `key` made less than `seconds` ago, or a new one."""
        with self._lock:
            made_at, answer = self._answers.get(key, (-math.inf, None))
            if time.monotonic() - made_at >= seconds:
                answer = compute()
                self._answers[key] = (time.monotonic(), answer)
            return answer
