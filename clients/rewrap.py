"""Rewrap every envelope under a folder, replacing each file atomically.

For each envelope the client sends only its preamble and header to the
daemon and gets a new header back; the body never leaves the machine and is
never decrypted. The new file is written next to the old one as
``.niemphong-rewrap-*.part``: new header, then the body copied byte for
byte, then fsync. Only then is it renamed over the envelope, so at every
moment the envelope's path holds either the old file, which opens under the
old key version, or the whole new one. After the rename the client shows
the daemon the new header, and only that call makes the registry record the
envelope under the new version (see daemon/rewrap.py).

The run is resumable by running it again. Envelopes already on the newest
versions cost one call each and are not rewritten; ``.part`` files left by
an interrupted run are deleted first, since the file they were replacing is
still whole. One run holds an exclusive lock on the folder, so two runs on
the same folder cannot delete each other's files.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from niemphong.clients.envelope_header import DamagedEnvelope, NotAnEnvelope, header_length, read_header
from niemphong.clients.errors import ClientError, ExitCode, os_error_text
from niemphong.clients.progress import ProgressBar
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import niemphong_pb2 as pb

log = logging.getLogger(__name__)

TEMP_PREFIX = ".niemphong-rewrap-"
TEMP_SUFFIX = ".part"
# Temporary files of any niemphong command (scan and view use ".niemphong-").
_ANY_TEMP_PREFIX = ".niemphong-"
COPY_CHUNK_BYTES = 1024 * 1024

# Failures after which no other file can succeed either: stop the run.
_FATAL_EXIT_CODES = frozenset({ExitCode.UNAVAILABLE, ExitCode.NOT_AUTHORIZED})
_FATAL_REASONS = frozenset({"RECOVERY_NOT_ACTIVE", "RECOVERY_NOT_CONFIGURED", "PROTOCOL_VIOLATION"})

# Sends a header to the daemon and returns its answer; raises ClientError.
RewrapCall = Callable[[bytes], kpb.RewrapResponse]


class FileStatus(enum.Enum):
    REWRAPPED = "rewrapped"
    CURRENT = "current"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class FileOutcome:
    """What happened to one file."""

    path: Path
    status: FileStatus
    artefact_id: str = ""
    previous_keys: list[pb.KeyRef] = field(default_factory=list)
    keys: list[pb.KeyRef] = field(default_factory=list)
    recorded: bool = False
    error: ClientError | None = None
    # Why a file was skipped: "not_envelope", "symlink" or "temporary".
    skip_reason: str = ""


@dataclass
class RewrapReport:
    """The outcome of a whole run."""

    root: Path
    outcomes: list[FileOutcome] = field(default_factory=list)
    leftovers_removed: int = 0

    def count(self, status: FileStatus) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    @property
    def first_failure(self) -> FileOutcome | None:
        return next((outcome for outcome in self.outcomes if outcome.status is FileStatus.FAILED), None)


def is_fatal(error: ClientError) -> bool:
    """Return whether a failure on one file means the others would fail the same way."""
    return error.exit_code in _FATAL_EXIT_CODES or error.reason in _FATAL_REASONS


def _is_rewrap_leftover(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX)


def _is_any_temporary(path: Path) -> bool:
    return path.name.startswith(_ANY_TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX)


def list_files(root: Path) -> Iterator[Path]:
    """Yield the files under ``root`` (or ``root`` itself if it is a file) in a stable order, not following links."""
    if not root.is_dir():
        yield root
        return
    for folder, folders, files in os.walk(root, followlinks=False):
        folders.sort()
        for name in sorted(files):
            yield Path(folder) / name


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``folder`` for the block.

    Raises ClientError (usage) when another run holds it.
    """
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ClientError(ExitCode.USAGE, "rewrap.locked", path=str(folder)) from exc
            raise
        yield
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_leftovers(paths: list[Path]) -> int:
    """Delete the ``.part`` files of interrupted rewraps among ``paths``; return how many."""
    removed = 0
    for path in paths:
        if _is_rewrap_leftover(path) and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
                log.info("removed %s left by an interrupted rewrap", path)
    return removed


def rewrap_tree(root: Path, call: RewrapCall, progress_factory: Callable[[int, int], ProgressBar]) -> RewrapReport:
    """Rewrap every envelope under ``root`` (a folder or one file).

    Args:
        root: The folder to walk, or a single envelope file.
        call: Sends one header to the daemon.
        progress_factory: Makes the progress bar from the file count and total bytes.

    Returns:
        The report, with one outcome per file looked at.

    Raises:
        ClientError: A failure that every other file would meet too (the
            daemon or token unavailable, a role missing, no recovery
            session), or the folder is locked by another run. Files done
            before it stay done.
    """
    # A single file is rewrapped under the lock of the folder that contains it.
    lock_folder = root if root.is_dir() else root.parent
    report = RewrapReport(root)

    with folder_lock(lock_folder):
        paths = list(list_files(root))
        if not root.is_dir():
            paths = [root] + [path for path in lock_folder.iterdir() if _is_rewrap_leftover(path)]
        report.leftovers_removed = remove_leftovers(paths)
        candidates = [path for path in paths if not _is_rewrap_leftover(path)]
        sizes = {path: _size(path) for path in candidates}

        progress = progress_factory(len(candidates), sum(sizes.values()))
        try:
            for path in candidates:
                counted_before = progress.done_bytes
                outcome = _rewrap_one(path, call, progress)
                report.outcomes.append(outcome)
                progress.file_done(max(0, sizes[path] - (progress.done_bytes - counted_before)))
                if outcome.error is not None and is_fatal(outcome.error):
                    raise outcome.error
        finally:
            progress.close()
    return report


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _rewrap_one(path: Path, call: RewrapCall, progress: ProgressBar) -> FileOutcome:
    if path.is_symlink():
        return FileOutcome(path, FileStatus.SKIPPED, skip_reason="symlink")
    if _is_any_temporary(path):
        return FileOutcome(path, FileStatus.SKIPPED, skip_reason="temporary")
    try:
        return rewrap_file(path, call, progress)
    except ClientError as error:
        log.debug("rewrap of %s failed: %s %s", path, error.message_id, error.reason)
        return FileOutcome(path, FileStatus.FAILED, error=error)
    except OSError as exc:
        error = ClientError(ExitCode.FAILURE, "error.io", path=str(path), error=os_error_text(exc))
        return FileOutcome(path, FileStatus.FAILED, error=error)


def rewrap_file(path: Path, call: RewrapCall, progress: ProgressBar | None = None) -> FileOutcome:
    """Rewrap one file in place, atomically. See the module docstring for the steps.

    Raises:
        ClientError: The daemon refused the header, the file changed while
            it was copied, or the daemon's new header is malformed. The
            file is then unchanged.
        OSError: Reading or writing failed. The file is then unchanged.
    """
    with path.open("rb") as source:
        before = os.fstat(source.fileno())
        if not stat.S_ISREG(before.st_mode):
            return FileOutcome(path, FileStatus.SKIPPED, skip_reason="not_envelope")
        try:
            header = read_header(source)
        except NotAnEnvelope:
            return FileOutcome(path, FileStatus.SKIPPED, skip_reason="not_envelope")
        except DamagedEnvelope:
            raise ClientError(ExitCode.INTEGRITY_FAILURE, "reason.INTEGRITY_FAILURE", reason="INTEGRITY_FAILURE") from None

        response = call(header)
        outcome = FileOutcome(
            path, FileStatus.CURRENT, artefact_id=response.artefact_id,
            previous_keys=list(response.previous_keys), keys=list(response.keys), recorded=response.recorded,
        )
        if not response.changed:
            return outcome

        new_header = response.header
        try:
            valid = header_length(new_header[:14]) == len(new_header)
        except (NotAnEnvelope, DamagedEnvelope):
            valid = False
        if not valid:
            raise ClientError(ExitCode.FAILURE, "error.bad_stream")
        _replace(path, source, before, len(header), new_header, progress)

    log.info("rewrote %s with a new header of %d bytes", path, len(new_header))
    try:
        confirmation = call(new_header)
    except ClientError as error:
        # The file is already whole under the new version; a later run records it.
        error.add_hint("rewrap.not_recorded_hint")
        outcome.status = FileStatus.FAILED
        outcome.error = error
        return outcome
    outcome.status = FileStatus.REWRAPPED
    outcome.recorded = confirmation.recorded and not confirmation.changed
    return outcome


def _replace(
    path: Path, source: BinaryIO, before: os.stat_result, old_header_len: int, new_header: bytes,
    progress: ProgressBar | None,
) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    body_len = before.st_size - old_header_len
    # mkstemp creates the file with mode 0600; the envelope's own mode is set below.
    descriptor, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as target:
            target.write(new_header)
            source.seek(old_header_len)
            copied = 0
            # Copy no more than the body had at the start: a file that keeps
            # growing would otherwise keep this loop reading forever. A file
            # that changed is caught below.
            while copied < body_len and (chunk := source.read(min(COPY_CHUNK_BYTES, body_len - copied))):
                target.write(chunk)
                copied += len(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
            target.flush()
            os.fsync(target.fileno())
            os.fchmod(target.fileno(), stat.S_IMODE(before.st_mode))
            with contextlib.suppress(PermissionError):
                os.fchown(target.fileno(), before.st_uid, before.st_gid)

        after = os.fstat(source.fileno())
        now_at_path = os.stat(path)
        unchanged = (
            copied == body_len
            and (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
            and (now_at_path.st_dev, now_at_path.st_ino) == (before.st_dev, before.st_ino)
        )
        if not unchanged:
            raise ClientError(ExitCode.FAILURE, "rewrap.file_changed", path=str(path))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)
