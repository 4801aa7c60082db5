"""The web pages, for browsers: server-rendered with Jinja (templates/), one blueprint each.

job_pages.py (the form, the job pages), schedule_pages.py, dead_letter_pages.py (the failed
pages and their retry buttons) and login.py (the instructor's login). They do the same work
as the JSON API (api/), through the same shared modules one folder up.
"""
