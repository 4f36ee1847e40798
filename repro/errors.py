"""The toolkit's error type: one clear line for the user, never a traceback."""


class ReproError(Exception):
    """A user-facing error (bad input, missing data, unusable checkpoint).

    The CLI prints ``str(error)`` as one line and exits with status 2.
    """
