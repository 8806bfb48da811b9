"""The ``aekit`` command line: parses, calls the Python API, prints."""

from aekit.cli.main import main

__all__ = ["main"]
