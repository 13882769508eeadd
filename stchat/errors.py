"""Errors users see as one clear line (the CLI and the app print ``str(error)``, never a traceback)."""


class StchatError(Exception):
    """Base class of every error stchat reports to a user as a one-line message."""


class VideoError(StchatError):
    """A video cannot be read, is empty, too large, or is not a video."""


class ModelLoadError(StchatError):
    """Model weights are missing, unreadable or in a refused format."""


class PromptError(StchatError):
    """A query or prompt cannot be built (too long, malformed coordinates)."""


class AnswerError(StchatError):
    """A model answer cannot be used at all (nothing to render)."""
