"""The one exception type for mistakes a user can make (config, data, objectives, checkpoints)."""


class BirdieError(Exception):
    """A user-facing error: the CLI prints its message without a traceback and exits non-zero."""
