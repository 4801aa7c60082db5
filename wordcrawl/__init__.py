"""The `wordcrawl` command line and the tools around the system, apart from its pieces.

cli.py is the command (`wordcrawl ...` or `python -m wordcrawl ...`): it starts the pieces
(job_manager, job_worker, job_viewer), and its job commands talk to the manager's JSON
API through client.py like any other program. local/ is `wordcrawl up`: the whole stack
on one machine, with its own Redis and PostgreSQL when none answers. demo_site.py serves
generated pages to crawl without the internet; bench/ measures speed and load.
"""
