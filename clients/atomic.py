"""Output files that appear whole or not at all.

A command writes into a temporary file (mode 0600) in the destination's
folder, flushes it to disk, and only then renames it into place. On any
failure, KeyboardInterrupt included, the temporary file is deleted, so a
failed ``scan`` or ``view`` leaves neither a partial envelope nor partial
plaintext behind.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from niemphong.clients.errors import ClientError, ExitCode

log = logging.getLogger(__name__)

# Errors from os.link on file systems without hard links; the no-overwrite
# publish then falls back on an existence check followed by os.replace.
_LINK_UNSUPPORTED = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV})


def check_output_path(path: Path, *, force: bool, inputs: Sequence[Path]) -> None:
    """Raise ClientError (usage) unless ``path`` is a valid place for a new output file.

    The output must not be a folder, must be in an existing folder, must not
    be any of ``inputs`` (even with ``force``), and must not exist unless
    ``force`` is set.
    """
    if path.is_dir():
        raise ClientError(ExitCode.USAGE, "usage.out_is_dir", path=str(path))

    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ClientError(ExitCode.USAGE, "usage.out_dir_missing", path=str(parent))

    if path.exists():
        for source in inputs:
            if source.exists() and os.path.samefile(path, source):
                raise ClientError(ExitCode.USAGE, "usage.out_is_input", path=str(path))
        if not force:
            raise ClientError(ExitCode.USAGE, "usage.out_exists", path=str(path))


def _publish(temporary: str, path: Path, *, force: bool) -> None:
    if force:
        os.replace(temporary, path)
        return

    # A hard link fails if the name exists, so a file that appeared since the
    # check is not overwritten.
    try:
        os.link(temporary, path)
    except FileExistsError as exc:
        raise ClientError(ExitCode.USAGE, "usage.out_exists", path=str(path)) from exc
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
        if path.exists():
            raise ClientError(ExitCode.USAGE, "usage.out_exists", path=str(path)) from exc
        os.replace(temporary, path)
    else:
        os.unlink(temporary)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        log.warning("cannot open %s to flush the rename: %s", folder, exc)
        return
    try:
        os.fsync(descriptor)
    except OSError as exc:
        log.warning("cannot flush %s after the rename: %s", folder, exc)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_output(path: Path, *, force: bool) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` when the block ends without an exception.

    Without ``force`` an existing ``path`` is never replaced, and ClientError
    (usage) is raised at the end instead. The file keeps mode 0600.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        # mkstemp creates the file with mode 0600, readable only by its owner.
        descriptor, temporary = tempfile.mkstemp(prefix=".niemphong-", suffix=".part", dir=folder)
    except OSError as exc:
        raise ClientError(ExitCode.FAILURE, "error.write_failed", path=str(path), error=exc.strerror) from exc
    log.debug("writing %s through %s", path, temporary)

    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            try:
                handle.flush()
                os.fsync(handle.fileno())
                _publish(temporary, path, force=force)
            except OSError as exc:
                raise ClientError(
                    ExitCode.FAILURE, "error.write_failed", path=str(path), error=exc.strerror
                ) from exc
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise

    _fsync_folder(folder)
