"""Output files that appear whole or not at all.

On Linux a command writes into an unnamed file (O_TMPFILE, mode 0600) in the
destination's folder, flushes it to disk, and only then gives it its name.
Until then the file has no name, so even a process killed with SIGKILL
leaves nothing behind: the kernel frees the unnamed file with its last
descriptor. Where O_TMPFILE is not supported the command writes into a
hidden named file instead (see _create_named). On any failure that Python
sees, KeyboardInterrupt included, the file is deleted, so a failed ``scan``
or ``view`` leaves neither a partial envelope nor partial plaintext behind.

``--out`` only ever replaces a regular file. FIFOs, device nodes, sockets,
symbolic links and folders are rejected, with ``--force`` too.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from niemphong.clients.errors import CatalogText, ClientError, ExitCode, os_error_text

log = logging.getLogger(__name__)

# Errors from os.link on file systems without hard links; the no-overwrite
# publish of a named file then falls back on an existence check followed by
# os.replace.
_LINK_UNSUPPORTED = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV})
# Errors that a write to the output raises without naming the file; the block
# reads only its inputs, which do not raise these.
_OUTPUT_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# Errors from open(O_TMPFILE) that mean "not supported here": EOPNOTSUPP from
# a file system without it, EISDIR from a kernel older than 3.11, which
# ignores the flag, and EINVAL where the flag combination is unknown.
_TMPFILE_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL})

_TEMPORARY_PREFIX = ".niemphong-"
_TEMPORARY_SUFFIX = ".part"
_TEMPORARY_NAME_ATTEMPTS = 100


def _output_status(path: Path) -> os.stat_result | None:
    """Return lstat(path), or None when nothing has that name."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        raise ClientError(ExitCode.USAGE, "usage.out_dir_missing", path=str(path.parent)) from exc


def _not_regular_error(path: Path, mode: int) -> ClientError:
    if stat.S_ISDIR(mode):
        return ClientError(ExitCode.USAGE, "usage.out_is_dir", path=str(path))
    return ClientError(ExitCode.USAGE, "usage.out_not_regular", path=str(path), kind=_file_kind(mode))


def _file_kind(mode: int) -> CatalogText:
    if stat.S_ISLNK(mode):
        return CatalogText("file_kind.symlink")
    if stat.S_ISFIFO(mode):
        return CatalogText("file_kind.fifo")
    if stat.S_ISCHR(mode):
        return CatalogText("file_kind.character_device")
    if stat.S_ISBLK(mode):
        return CatalogText("file_kind.block_device")
    if stat.S_ISSOCK(mode):
        return CatalogText("file_kind.socket")
    return CatalogText("file_kind.other")


def check_output_path(path: Path, *, force: bool, inputs: Sequence[Path]) -> None:
    """Raise ClientError (usage) unless ``path`` is a valid place for a new output file.

    The output must be in an existing folder. If something already has that
    name, it must be a regular file (a symbolic link, FIFO, device node,
    socket or folder is rejected even with ``force``), must not be any of
    ``inputs``, and is accepted only with ``force``.
    """
    status = _output_status(path)
    if status is not None and stat.S_ISDIR(status.st_mode):
        raise ClientError(ExitCode.USAGE, "usage.out_is_dir", path=str(path))

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ClientError(ExitCode.USAGE, "usage.out_dir_missing", path=str(parent))

    if status is None:
        return
    if not stat.S_ISREG(status.st_mode):
        raise _not_regular_error(path, status.st_mode)
    for source in inputs:
        if source.exists() and os.path.samefile(path, source):
            raise ClientError(ExitCode.USAGE, "usage.out_is_input", path=str(path))
    if not force:
        raise ClientError(ExitCode.USAGE, "usage.out_exists", path=str(path))


@dataclass
class _OutputFile:
    """The file being written: its descriptor, and its name in the folder once it has one."""

    descriptor: int
    unnamed: bool
    temporary_name: str | None = None


def _temporary_name() -> str:
    return f"{_TEMPORARY_PREFIX}{secrets.token_hex(8)}{_TEMPORARY_SUFFIX}"


def _create_unnamed(folder_fd: int) -> _OutputFile | None:
    """Open an unnamed file in the folder, or return None where O_TMPFILE is not supported."""
    tmpfile_flag = getattr(os, "O_TMPFILE", None)
    if tmpfile_flag is None:
        return None
    try:
        descriptor = os.open(".", tmpfile_flag | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno not in _TMPFILE_UNSUPPORTED:
            raise
        log.debug("O_TMPFILE not supported here (%s); using a named temporary file", exc.strerror)
        return None

    # The file gets its name through /proc/self/fd, so without /proc it could never be published.
    if not os.path.exists(f"/proc/self/fd/{descriptor}"):
        log.debug("/proc/self/fd is not available; using a named temporary file")
        os.close(descriptor)
        return None
    return _OutputFile(descriptor=descriptor, unnamed=True)


def _create_named(folder_fd: int) -> _OutputFile:
    """Create a hidden ``.niemphong-*.part`` file in the folder.

    NOTE: this is the fallback where O_TMPFILE is not supported. A process
    killed with SIGKILL (or by a power cut) runs no cleanup, so it leaves
    this file behind, holding the part of the plaintext or envelope written
    so far; delete such files by hand.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(_TEMPORARY_NAME_ATTEMPTS):
        name = _temporary_name()
        try:
            descriptor = os.open(name, flags, 0o600, dir_fd=folder_fd)
        except FileExistsError:
            continue
        return _OutputFile(descriptor=descriptor, unnamed=False, temporary_name=name)
    raise FileExistsError(errno.EEXIST, "no free temporary file name", _TEMPORARY_PREFIX + "*" + _TEMPORARY_SUFFIX)


def _link_unnamed(output: _OutputFile, name: str, folder_fd: int) -> None:
    # CPython calls linkat(AT_SYMLINK_FOLLOW) only when a dir_fd is given;
    # with plain link() the kernel would try to link the /proc symlink itself
    # and fail with EXDEV.
    os.link(f"/proc/self/fd/{output.descriptor}", name, dst_dir_fd=folder_fd, follow_symlinks=True)


def _name_unnamed(output: _OutputFile, folder_fd: int) -> None:
    """Give the unnamed file a temporary name, so that os.replace can move it over the output."""
    for _ in range(_TEMPORARY_NAME_ATTEMPTS):
        name = _temporary_name()
        try:
            _link_unnamed(output, name, folder_fd)
        except FileExistsError:
            continue
        output.temporary_name = name
        return
    raise FileExistsError(errno.EEXIST, "no free temporary file name", _TEMPORARY_PREFIX + "*" + _TEMPORARY_SUFFIX)


def _replace_regular_file(output: _OutputFile, path: Path, folder_fd: int) -> None:
    """Move the named output file over ``path``, which must be absent or a regular file."""
    assert output.temporary_name is not None
    try:
        status = os.stat(path.name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        status = None
    if status is not None and not stat.S_ISREG(status.st_mode):
        raise _not_regular_error(path, status.st_mode)

    # NOTE: another process could put a non-regular file at ``path`` between
    # the check above and this rename; rename(2) has no flag to prevent it.
    os.replace(output.temporary_name, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    output.temporary_name = None


def _publish(output: _OutputFile, path: Path, folder_fd: int, *, force: bool) -> None:
    if force:
        if output.unnamed:
            _name_unnamed(output, folder_fd)
        _replace_regular_file(output, path, folder_fd)
        return

    # A hard link fails if the name exists, so a file that appeared since the
    # check is not overwritten.
    try:
        if output.unnamed:
            _link_unnamed(output, path.name, folder_fd)
        else:
            assert output.temporary_name is not None
            os.link(output.temporary_name, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except FileExistsError as exc:
        raise ClientError(ExitCode.USAGE, "usage.out_exists", path=str(path)) from exc
    except OSError as exc:
        if output.unnamed or exc.errno not in _LINK_UNSUPPORTED:
            raise
        if os.path.lexists(path):
            raise ClientError(ExitCode.USAGE, "usage.out_exists", path=str(path)) from exc
        _replace_regular_file(output, path, folder_fd)
        return

    if output.temporary_name is not None:
        os.unlink(output.temporary_name, dir_fd=folder_fd)
        output.temporary_name = None


def _fsync_folder(folder_fd: int, folder: Path) -> None:
    try:
        os.fsync(folder_fd)
    except OSError as exc:
        log.warning("cannot flush %s after the rename: %s", folder, exc)


@contextmanager
def atomic_output(path: Path, *, force: bool) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` when the block ends without an exception.

    Without ``force`` an existing ``path`` is never replaced, and ClientError
    (usage) is raised at the end instead. With ``force`` only a regular file
    is replaced. The file keeps mode 0600, less any bits the umask removes.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ClientError(ExitCode.FAILURE, "error.write_failed", path=str(path), error=os_error_text(exc)) from exc

    try:
        try:
            output = _create_unnamed(folder_fd) or _create_named(folder_fd)
        except OSError as exc:
            raise ClientError(ExitCode.FAILURE, "error.write_failed", path=str(path), error=os_error_text(exc)) from exc
        log.debug("writing %s through %s", path, output.temporary_name or "an unnamed O_TMPFILE file")

        handle = os.fdopen(output.descriptor, "wb")
        try:
            try:
                yield handle
            except OSError as exc:
                if exc.filename is not None or exc.errno not in _OUTPUT_FULL:
                    raise
                raise ClientError(
                    ExitCode.FAILURE, "error.write_failed", path=str(path), error=os_error_text(exc)
                ) from exc
            try:
                handle.flush()
                os.fsync(handle.fileno())
                _publish(output, path, folder_fd, force=force)
            except OSError as exc:
                raise ClientError(
                    ExitCode.FAILURE, "error.write_failed", path=str(path), error=os_error_text(exc)
                ) from exc
            handle.close()
        except BaseException:
            # Closing flushes what is still buffered, which fails again on
            # a full file system; the first error is the one to report.
            with suppress(OSError):
                handle.close()
            if output.temporary_name is not None:
                with suppress(FileNotFoundError):
                    os.unlink(output.temporary_name, dir_fd=folder_fd)
            raise

        _fsync_folder(folder_fd, folder)
    finally:
        os.close(folder_fd)
