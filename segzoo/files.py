"""Writing what users rely on: file-system failures as one line naming the user's path, and a lock on an output
folder so that two runs never write into it at once."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from .errors import OutputError

__all__ = ["check_output_file", "describe_os_error", "lock_folder", "output_error", "refuse_existing"]

_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied (a read-only folder?)",
    errno.EPERM: "permission denied (a read-only folder?)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "it exists",
    errno.ENOENT: "a folder on the path does not exist",
    errno.ENAMETOOLONG: "the name is too long",
}
_held = {}  # folder -> open lock file, kept for the life of the process


def _errno_of(err: BaseException) -> int | None:
    if isinstance(err, OSError) and err.errno is not None:
        return err.errno
    match = re.search(r"(?:code: |\[Errno )(\d+)", str(err))  # safetensors' SafetensorError wraps Rust's io::Error
    return int(match.group(1)) if match else None


def describe_os_error(err: BaseException) -> str:
    """The cause of a file-system failure in words (``the disk is full``), else the error's own text."""
    code = _errno_of(err)
    if code in _CAUSES:
        return _CAUSES[code]
    return os.strerror(code) if code is not None else str(err)


def output_error(path: str | os.PathLike, err: BaseException) -> OutputError:
    """``OutputError("cannot write PATH: CAUSE")`` for a failed write of the user's ``path`` (never a temporary
    name), raised ``from`` the original error by the caller. A file where a folder of the path should be is named.
    An ``OutputError`` about another path (a temporary folder written through) gives its own cause."""
    if isinstance(err, OutputError):
        original = err.__cause__ or err.__context__
        if original is None:  # nothing below it to describe: keep its words
            return OutputError(str(err))
        err = original
    cause = describe_os_error(err)
    if _errno_of(err) in (errno.EEXIST, errno.ENOTDIR, errno.ENOENT):  # mkdir(parents=True) below a file: EEXIST
        blocking = next((parent for parent in Path(path).parents if os.path.lexists(parent)), None)
        if blocking is not None and not blocking.is_dir():
            cause = f"{blocking} is a file, not a folder"
    return OutputError(f"cannot write {os.fspath(path)}: {cause}")


def refuse_existing(path: str | os.PathLike, what: str, option: str = "--overwrite") -> None:
    """``OutputError`` when ``path`` exists: outputs are never replaced unasked."""
    if os.path.lexists(path):
        raise OutputError(f"{os.fspath(path)} exists ({what}); pass {option} to replace it, or choose another path")


def check_output_file(path: str | os.PathLike) -> None:
    """``OutputError`` now, before any work, when the file ``path`` could not be written later: it is a folder,
    a file stands where a folder of its path should be, or the nearest existing folder cannot be written to
    (read-only). Missing folders are fine: they are created when the file is written.

    A check, not a promise: the disk may fill, or the folder change, before the write (which reports that too).
    """
    path = Path(path)
    if path.is_dir():
        raise output_error(path, IsADirectoryError(errno.EISDIR, "is a folder"))
    existing = next((parent for parent in path.parents if os.path.lexists(parent)), Path("."))
    if not existing.is_dir():
        raise output_error(path, NotADirectoryError(errno.ENOTDIR, "not a folder"))
    if not os.access(existing, os.W_OK | os.X_OK):  # a read-only folder or file system
        raise output_error(path, PermissionError(errno.EACCES, "permission denied"))


def lock_folder(folder: str | os.PathLike, option: str, name: str = ".segzoo.lock") -> None:
    """Hold an exclusive lock on ``folder`` (created) for the rest of this process, so that a second run writing
    into it is refused at once, naming the first's process, instead of mixing or replacing its files. The lock
    dies with the process: a killed run leaves nothing to clean up. POSIX only; elsewhere there is no lock.

    Args:
        folder: The output folder.
        option: How the user named it (``--out``), for the message.
        name: The lock file in ``folder``.
    """
    try:
        import fcntl
    except ImportError:
        return
    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _held:  # this process holds it already
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / name, "a+")
    except OSError as err:
        raise output_error(folder, err) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        process = f" (process {holder})" if holder.isdigit() else ""
        raise OutputError(f"{option} {folder} is in use by another run{process} that is still running: wait for it "
                          f"to end, or choose another {option}") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[key] = handle
