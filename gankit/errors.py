"""Errors whose message is shown to the user as one line (which file, what is wrong, what to do)."""


class GankitError(Exception):
    """Base of every user-facing error; the CLI prints it without a traceback and exits 2."""


class AudioReadError(GankitError):
    """An audio file is missing, unreadable, truncated, empty or otherwise unusable."""


class ConfigError(GankitError):
    """A configuration is invalid or conflicts with a saved run."""


class CheckpointError(GankitError):
    """A checkpoint is missing, unsafe, corrupt, or from another architecture."""


class DataError(GankitError):
    """A corpus, metadata file or file list cannot be used."""


class MelInputError(GankitError):
    """A mel spectrogram given for vocoding has the wrong shape, band count, dtype or values."""
