"""`huiliu`: the command line, one module per command group over `common.py`."""

from pipelines.cli.main import main

__all__ = ["main"]
