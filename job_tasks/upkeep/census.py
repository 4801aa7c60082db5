"""Which workers are alive, and what each is doing: a census every worker keeps in Redis.

Every worker reports itself every few seconds (its heartbeat): a sorted set holds each
worker's node name scored by the time of its last report, on Redis's clock, and a key per
worker holds that report (its pool, pages in flight, CPU...). A worker whose last report
is older than the census's `ttl` is gone: killed, powered off, or paused that long.

Readers (the manager's health, dashboard and metrics; the reconciler that sends a dead
worker's pages again) read this census instead of broadcasting a ping to every worker and
waiting for the answers: one Redis round trip, whatever the number of readers.

Both keys expire by themselves when no worker reports any more, and the set holds only
the workers seen within `ttl`, so the census stays as small as the deployment.
"""

from __future__ import annotations

import json
from typing import Any

import redis

CENSUS_KEY = "wordcrawl:census"  # sorted set: node name -> time of its last report (s)
REPORT_PREFIX = "wordcrawl:census:"  # string per node: its last report, as JSON

# KEYS[1]: the census set; KEYS[2]: this worker's report. ARGV: node name, report (JSON),
# ttl (ms). On Redis's clock, so workers on machines whose clocks differ still agree.
_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl_ms = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl_ms / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl_ms)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl_ms)
return 1
"""
# KEYS[1]: the census set. ARGV: ttl (ms). Returns [node, report, node, report, ...] of the
# workers whose last report is younger than ttl.
_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]) / 1000, '+inf')
local out = {}
for _, node in ipairs(nodes) do
  table.insert(out, node)
  table.insert(out, redis.call('GET', ARGV[2] .. node) or '{}')
end
return out
"""


class Census:
    """The census of one deployment's workers, in its broker's Redis."""

    def __init__(self, client: redis.Redis, ttl_seconds: float) -> None:
        self.client = client
        self.ttl_ms = max(1, round(ttl_seconds * 1000))
        self._report = client.register_script(_REPORT)
        self._alive = client.register_script(_ALIVE)

    def report(self, node: str, report: dict[str, Any]) -> None:
        """Say that this worker is alive, with what it is doing now."""
        self._report(
            keys=[CENSUS_KEY, REPORT_PREFIX + node],
            args=[node, json.dumps(report), self.ttl_ms],
        )

    def alive(self) -> dict[str, dict[str, Any]]:
        """Return the workers alive now (reported within ttl), node name to last report."""
        flat = self._alive(keys=[CENSUS_KEY], args=[self.ttl_ms, REPORT_PREFIX])
        names = [_text(item) for item in flat[0::2]]
        return {name: json.loads(_text(raw)) for name, raw in zip(names, flat[1::2], strict=True)}

    def forget(self, node: str) -> None:
        """Take a worker out of the census at once (it is stopping on purpose)."""
        self.client.zrem(CENSUS_KEY, node)
        self.client.delete(REPORT_PREFIX + node)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
