"""`python -m graphlake` is the same as the `graphlake` command."""

from graphlake.cli import app

app()
