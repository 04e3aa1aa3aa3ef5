"""`python -m s9`: the same as the `s9` command."""

from .cli import main

main()
