"""Where a command writes a file the user named (``-o``, ``--html``, ...): checked before any
work, never a folder created on the user's behalf.

A typo in a folder name must not leave a new folder tree behind, and an unwritable place must
fail in the first second, not after the report or the predictions were built.
"""

from __future__ import annotations

from pathlib import Path

from raytag.errors import InputError


class OutputPathError(InputError):
    """A named output file that cannot be written: its folder is missing, or not writable."""


def check_output_file(path: str | Path, flag: str) -> Path:
    """Checks that the file ``path`` can be written, before the work that produces it.

    The folder must exist (it is not created) and a file must be creatable there: a probe
    opens ``path`` for appending (which also catches read-only file systems, and works for
    root, for whom permission bits say nothing) and removes it again if it was not there.

    Args:
        path: the output file (a local path).
        flag: the command-line flag that named it, for the message (e.g. ``"-o"``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: the folder does not exist or is not a folder, ``path`` is a folder,
            or the file cannot be opened for writing (the OS reason is named).
    """
    path = Path(path)
    folder = path.parent
    if not folder.exists():
        raise OutputPathError(f"{flag} {path}: the folder {folder} does not exist (raytag does not create it)")
    if not folder.is_dir():
        raise OutputPathError(f"{flag} {path}: cannot write there: {folder} is not a folder")
    if path.is_dir():
        raise OutputPathError(f"{flag} {path}: is a folder; name a file")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise OutputPathError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def check_output_folder(path: str | Path, flag: str) -> Path:
    """Checks that the folder ``path`` exists or can be made as one new folder in an existing
    one (its parent is not created).

    Raises:
        OutputPathError: ``path`` is a file, or its parent folder does not exist.
    """
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise OutputPathError(f"{flag} {path}: is a file, not a folder")
    if not path.parent.is_dir():
        raise OutputPathError(f"{flag} {path}: the folder {path.parent} does not exist (raytag does not create it)")
    return path
