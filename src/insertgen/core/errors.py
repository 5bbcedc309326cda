"""User-facing errors.

Every problem caused by what a user handed us (a file, a prompt, an option, a run directory) is raised
as :class:`InsertgenError` with a message that names the thing and the problem. The CLI prints the
message and exits non-zero; it never shows a traceback for these.
"""


class InsertgenError(Exception):
    """A problem with user input, reported as a clear one-line message."""
