"""User-facing errors: one line that says what is wrong and how to fix it."""


class SoftpromptError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""
