"""Measure the running system: `wordcrawl bench` (speed.py: pages per second as workers
are added) and `wordcrawl load` (load.py: the manager's answers under a steady stream of
submissions)."""
