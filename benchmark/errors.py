"""Errors a user can cause: each one is reported as one line, never a traceback."""


class BenchmarkError(Exception):
    """A problem with the user's input or environment; exit status 1."""

    exit_status = 1


class ConfigError(BenchmarkError):
    """Bad configuration, refused before any work is done; exit status 2."""

    exit_status = 2


class DataError(BenchmarkError):
    """A data file that is missing, unreadable or inconsistent."""
