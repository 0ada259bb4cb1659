"""Errors a user can act on. Each names what was wrong and where (file, line or field)."""


class PolydistillError(Exception):
    """Base class: the CLI prints these as one clear message, without a traceback."""


class ConfigError(PolydistillError):
    """A run config that cannot run: names the file, the field and what was expected."""


class DataError(PolydistillError):
    """Bad input data: names the file, the line or row, and what was expected."""


class ModelNotFoundError(PolydistillError):
    """A model reference that resolves to nothing: names the reference and why."""


class ModelFileError(PolydistillError):
    """A model directory whose files cannot be used (an invalid config.json, an LFS pointer, a truncated
    or pickle-only checkpoint): names the file, what is wrong with it and the fix."""
