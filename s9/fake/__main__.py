"""`python -m s9.fake`: the same as `s9 fake-replicate`."""

from .cli import main

main()
