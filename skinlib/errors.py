"""User-facing errors. The command line prints these as one clear message, not a traceback.

Every message names the file, row or key at fault and says what to do about it.
"""


class SkinlibError(Exception):
    """Base class of the errors a user can fix (bad input, bad configuration, missing files)."""


class DataError(SkinlibError):
    """A dataset file or image is missing, malformed or inconsistent."""


class ConfigError(SkinlibError, ValueError):
    """A profile or override that cannot be applied."""


class TrainingError(SkinlibError):
    """A run that cannot go on (NaN loss, out of memory, unknown architecture)."""
