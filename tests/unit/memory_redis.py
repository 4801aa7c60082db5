"""An in-memory stand-in for the few Redis commands robots.py sends (unit tests only).

The integration tests use the real Redis; this lets the caching of robots.txt be checked
command by command without a server.
"""

from __future__ import annotations

import time


class MemoryRedis:
    """GET, PTTL and SET (with EX), each key with its expiry, and pipelines of them."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.expires: dict[str, float] = {}

    def get(self, key: str) -> bytes | None:
        if key in self.expires and self.expires[key] <= time.monotonic():
            del self.values[key], self.expires[key]
        return self.values.get(key)

    def pttl(self, key: str) -> int:
        if self.get(key) is None:
            return -2
        return round((self.expires[key] - time.monotonic()) * 1000) if key in self.expires else -1

    def set(self, key: str, value: bytes, ex: int | None = None) -> bool:
        self.values[key] = value
        if ex is not None:
            self.expires[key] = time.monotonic() + ex
        return True

    def ttl(self, key: str) -> int:
        return round(self.pttl(key) / 1000)

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self)


class _Pipeline:
    def __init__(self, client: MemoryRedis) -> None:
        self.client = client
        self.calls: list = []

    def get(self, key: str) -> _Pipeline:
        self.calls.append(lambda: self.client.get(key))
        return self

    def pttl(self, key: str) -> _Pipeline:
        self.calls.append(lambda: self.client.pttl(key))
        return self

    def execute(self) -> list:
        return [call() for call in self.calls]
