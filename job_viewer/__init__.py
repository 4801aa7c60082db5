"""The viewer: Flower, configured for wordcrawl (basic auth, persistent state, events).

Flower watches the workers' task events on the broker and shows every task with its
worker, live. It is never served without a password: see flowerconfig.py.
"""

from .command import FLOWER_CONFIG, flower_command

__all__ = ["FLOWER_CONFIG", "flower_command"]
