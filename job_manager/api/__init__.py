"""The JSON API, for programs: one blueprint per kind of thing a student sends or reads.

jobs.py (submit, read, cancel jobs; activity and health), schedules.py (list, pause,
delete, compare runs), dead_letters.py (failed pages, their history, retries). Every view
is thin: checks.py reads and checks the request, the shared modules one folder up do the
work, and errors become the API's one error body (errors.py).
"""
