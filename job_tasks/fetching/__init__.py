"""Fetching, the first stage of a page's path: get its bytes, safely and politely.

fetch.py gets a page through the address guard (guard.py), within one deadline for the
whole page (deadline.py), after robots.txt allows it (robots.py, robots_txt.py) and the
site has a free slot (politeness.py). resources.py keeps a worker's fetcher between pages.
"""
