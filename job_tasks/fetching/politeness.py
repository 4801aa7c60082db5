"""Be polite to every site, across all workers: a per-host limit kept in Redis.

Celery's own `rate_limit` counts per worker process, but politeness is about what a
*site* receives from all workers together, so the counters live in Redis, beside the
broker. Before each request a worker takes a slot of the host (at most
WORDCRAWL_PER_HOST_CONCURRENCY at once) that also respects a gap since the previous
request to it (WORDCRAWL_PER_HOST_DELAY_MS, or the host's Crawl-delay when robots.txt
asks for more), and gives the slot back afterwards.

A slot is a member of a sorted set scored by when it expires, so a worker killed while
holding one cannot block a host for longer than a page may take. Both keys of a host
expire (the slots when the last would, the gap when it has passed), and the set holds at
most WORDCRAWL_PER_HOST_CONCURRENCY members: Redis keeps nothing for a host once it is
left alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

# KEYS[1]: the host's slots (sorted set, score = expiry in ms); KEYS[2]: when the next
# request may start (ms). ARGV: slot id, limit, delay (ms), slot lifetime (ms).
# Returns 0 when the slot was taken, else how many ms to wait before asking again.
# One script, so checking and taking happen as one step for every worker at once, on
# Redis's clock, so workers on machines whose clocks differ still agree.
_ACQUIRE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
  return math.max(1, math.min(50, tonumber(soonest) - now))
end
local next_start = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < next_start then
  return next_start - now
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[3]), 'PX', tonumber(ARGV[3]))
end
return 0
"""

POLL_MS = 50  # the longest a waiting worker sleeps before asking again


class HostBusy(Exception):
    """The host had no free slot before the page's deadline."""


class HostLimiter:
    """Slots per host, shared by every worker through Redis."""

    def __init__(
        self,
        client: redis.Redis,
        concurrency: int,
        delay_ms: int,
        slot_seconds: float,
        prefix: str = "wordcrawl:host",
    ) -> None:
        self.client = client
        self.concurrency = concurrency
        self.delay_ms = delay_ms
        self.slot_ms = max(1, round(slot_seconds * 1000))
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)

    @contextmanager
    def slot(self, host: str, deadline: float, delay_ms: int | None = None) -> Iterator[None]:
        """Hold one of the host's slots for the body of the with-block.

        `delay_ms` is the host's own minimum gap (its robots.txt's Crawl-delay), when it
        asks for more than WORDCRAWL_PER_HOST_DELAY_MS.
        """
        slots_key = f"{self.prefix}:{host}:slots"
        slot_id = uuid.uuid4().hex
        gap_ms = max(self.delay_ms, delay_ms or 0)
        while True:
            wait_ms = self._acquire(
                keys=[slots_key, f"{self.prefix}:{host}:next"],
                args=[slot_id, self.concurrency, gap_ms, self.slot_ms],
            )
            if wait_ms == 0:
                break
            if time.monotonic() + wait_ms / 1000 > deadline:
                raise HostBusy(f"{host} was busy with other pages until the page's deadline")
            time.sleep(min(wait_ms, POLL_MS) / 1000)
        try:
            yield
        finally:
            self.client.zrem(slots_key, slot_id)
