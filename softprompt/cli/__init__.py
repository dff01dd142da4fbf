"""The ``softprompt`` command: click commands, one module per command group (the only package that knows click)."""

from softprompt.cli.app import cli, main

__all__ = ["cli", "main"]
