"""raytag's own errors, one hierarchy: what the command line turns into exit codes.

- :class:`InputError` (exit code 2): bad input the user can fix: a job key, a manifest row, a
  missing model or file, a tracking store that is not there. The message names the key, file,
  line or flag. Every module's own input error subclasses it (``ConfigError``,
  ``ManifestError``, ``ExportError``, ...).
- :class:`JobError` (exit code 1): a job that cannot go on while running (e.g. a split with no
  usable audio).

Both derive from :class:`RaytagError`. ``InputError`` is also a ``ValueError`` (and ``JobError``
a ``RuntimeError``), so code that catches the built-in kind keeps working.
"""


class RaytagError(Exception):
    """Any error raytag raises on purpose, with a message meant for the user."""


class InputError(RaytagError, ValueError):
    """Bad input, found before any cluster work wherever it can be; the message names it."""


class JobError(RaytagError, RuntimeError):
    """A job that cannot run as configured (e.g. a split with no usable audio)."""


EXIT_OK = 0
EXIT_FAILED = 1
"""A job that failed while running, any error that is not bad input, or a ``raytag predict``
that could tag no file."""
EXIT_BAD_INPUT = 2
"""An :class:`InputError` (and a bad command-line argument)."""
