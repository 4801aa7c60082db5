"""Look inside the Redis broker: which task messages it holds, and how many wait.

Celery does not offer this for Redis, so these read kombu's own layout (one Redis list
per queue and priority step, and a hash of the messages taken but not yet acknowledged).
Used by the reconciler (reconcile.py) and the manager's dashboard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from celery import Celery
from kombu.transport.redis import Channel

CHUNK = 1000  # messages read from Redis at once


def _queue_keys(channel: Channel, queues: list[str]) -> set[str]:
    # Kombu keeps one Redis list per priority step of a queue.
    return {channel._q_for_pri(q, step) for q in queues for step in channel.priority_steps}


def queue_length(app: Celery, queues: list[str]) -> int:
    """Return how many task messages wait in these queues (not yet taken by a worker)."""
    with app.connection_for_write() as connection:
        channel: Channel = connection.default_channel
        return sum(channel.client.llen(key) for key in _queue_keys(channel, queues))


def broker_task_ids(app: Celery, queues: list[str]) -> set[str]:
    """Return the ids of every task message the Redis broker holds, queued or unacked."""
    with app.connection_for_write() as connection:
        channel: Channel = connection.default_channel
        client = channel.client
        ids = set()
        for key in _queue_keys(channel, queues):
            for raw in _list_items(client, key):
                ids.add(_task_id(json.loads(raw)))
        # A worker takes a message off its queue, then records it as unacked: one moment
        # in neither place. Reading the unacked set after the queues catches messages taken
        # while the queues were read; the extra run of a page missed even so is harmless.
        for raw in client.hvals(channel.unacked_key):
            message, _exchange, _routing_key = json.loads(raw)
            ids.add(_task_id(message))
    ids.discard(None)
    return ids


def task_ids_taken_before(app: Celery, seconds: float) -> set[str]:
    """Return the ids of the task messages that a worker took more than `seconds` ago and
    has not acknowledged: running pages, retries waiting for their countdown, and those
    a dead worker took (kombu notes when each was taken, on the taker's clock)."""
    with app.connection_for_write() as connection:
        channel: Channel = connection.default_channel
        client = channel.client
        tags = client.zrangebyscore(channel.unacked_index_key, "-inf", time.time() - seconds)
        ids = set()
        for start in range(0, len(tags), CHUNK):
            for raw in client.hmget(channel.unacked_key, tags[start : start + CHUNK]):
                if raw is not None:  # acknowledged meanwhile
                    message, _exchange, _routing_key = json.loads(raw)
                    ids.add(_task_id(message))
    ids.discard(None)
    return ids


def _list_items(client, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """Read a Redis list a chunk at a time: a long queue is megabytes in one reply.

    Kombu adds messages at the list's head and workers take them from its tail. A message
    added meanwhile moves the others one place further, so one may be read twice (the ids
    are a set), and one taken meanwhile is in the unacked hash, read afterwards: none that
    stays in the list is missed.
    """
    start = 0
    while items := client.lrange(key, start, start + chunk - 1):
        yield from items
        start += chunk


def _task_id(message: dict) -> str | None:
    return message.get("headers", {}).get("id")
