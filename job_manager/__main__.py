"""Run the command line as `python -m job_manager` (what `wordcrawl up` starts its pieces with)."""

from .cli import main

main()
