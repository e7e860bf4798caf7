"""The one error type users see: a single line naming the bad value and what was expected."""


class LlmhostError(Exception):
    """Bad input or an unusable environment; the CLI prints it on one line and exits 2."""
