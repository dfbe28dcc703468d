"""`python -m repair`: the same commands as the `order-repair` console script."""

from repair.cli import run

run()
