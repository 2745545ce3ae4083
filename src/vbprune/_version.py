"""The package version (read by setup.py; kept apart so that nothing imports a module
just to learn it)."""

__version__ = "0.6.0"
