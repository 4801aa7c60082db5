"""Run the command line as `python -m wordcrawl` (what `wordcrawl up` starts its pieces with)."""

from .cli import main

main()
