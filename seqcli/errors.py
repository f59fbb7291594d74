"""The project's exception types: the CLI turns them into one line and an exit code."""


class SeqcliError(Exception):
    """A problem with the user's data, files or run directory (exit code 1)."""

    exit_code = 1


class UsageError(SeqcliError):
    """An unknown, missing or conflicting option value (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration field with a bad value; the message names the field."""


class DataError(SeqcliError):
    """A corpus or input file that cannot be used; the message names file and line."""


class RunDirError(SeqcliError):
    """A run directory that is missing, incomplete or inconsistent."""
