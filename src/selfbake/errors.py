"""One exception type for mistakes the user can fix.

The CLI turns a UserError into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback under ``--debug``.
"""


class UserError(Exception):
    """Bad input: a missing file, an unknown key, an impossible setting."""

    exit_code = 2


class WeightsError(UserError):
    """A model or adapter weights file that cannot be read (corrupt, truncated, not safetensors); names the file."""
