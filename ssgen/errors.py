"""Errors a user can act on. The CLI prints them as one line and exits non-zero (no traceback)."""


class SsgenError(Exception):
    """Base of every error caused by the user's input, config, data or environment."""


class ConfigError(SsgenError):
    """A config key, type, value or name is wrong; the message names it and what was expected."""


class DataError(SsgenError):
    """A dataset, image file or path cannot be used; the message names it."""


class CheckpointError(SsgenError):
    """A checkpoint or run directory cannot be used."""
