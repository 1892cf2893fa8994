"""Local spool mode: files that the daemon reads and writes itself, for clients on its host.

Each identity has its own spool directory, ``<root>/<certificate common
name>``, and names files by paths relative to it. gRPC Python does not expose
the peer credentials (SO_PEERCRED) of a unix socket connection, so the
daemon cannot learn which operating-system user is calling. The directory
therefore follows from the mTLS identity, and file ownership is checked
against the owner of that directory instead:

- A path is relative, its components joined by ``/``, with no empty, ``.``
  or ``..`` component, at most MAX_PATH_BYTES bytes of UTF-8 and
  MAX_COMPONENT_BYTES per component.
- Every component is opened relative to the one before it with O_NOFOLLOW,
  so a symbolic link anywhere on the path is rejected, not followed, and a
  rename of a parent during the walk cannot lead outside the directory.
- Directories on the path must not be writable by others (mode o+w).
- A file read must be a regular file with exactly one hard link, owned by
  the owner of the identity's directory or by the daemon's own user. One
  hard link: a second name for a file elsewhere, such as the daemon's PIN
  file, is how one would get past the path checks.
- A file written goes to a temporary file (mode 0640) in the destination's
  folder, is flushed to disk and is renamed into place only when complete.
  Without ``replace`` an existing name is never overwritten.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255
OUTPUT_MODE = 0o640
TEMPORARY_PREFIX = ".niemphong-"

# Common names that can be a directory name as they are.
_IDENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class SpoolConfig:
    """The [spool] section: the root of the per-identity spool directories."""

    root: Path
    workers: int


class SpoolError(Exception):
    """A spool path or file was rejected.

    Attributes:
        reason: SPOOL_PATH_INVALID, SPOOL_FILE_NOT_FOUND, SPOOL_FILE_REJECTED,
            SPOOL_OUTPUT_EXISTS or SPOOL_IO_FAILED.
        field: the request field that named the path.
        problem: for SPOOL_FILE_REJECTED and SPOOL_IO_FAILED, a short
            machine-readable word: ``symlink``, ``not_regular``, ``owner``,
            ``hard_links``, ``writable_by_others``, ``changed``, or an errno name.
    """

    def __init__(self, reason: str, field: str, message: str, problem: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message
        self.problem = problem


@dataclass
class InputFile:
    """A file opened for reading, with the status it had when opened."""

    fd: int
    size: int
    status: os.stat_result

    def check_unchanged(self, field: str) -> None:
        """Raise SpoolError if the file's size or modification time changed since it was opened."""
        now = os.fstat(self.fd)
        if (now.st_size, now.st_mtime_ns) != (self.status.st_size, self.status.st_mtime_ns):
            raise SpoolError("SPOOL_FILE_REJECTED", field, "the file changed while it was read", "changed")


@dataclass
class OutputFile:
    """A temporary file that becomes the named file on :meth:`commit`."""

    fd: int
    folder_fd: int
    name: str
    temporary: str
    replace: bool
    field: str
    committed: bool = False

    def commit(self) -> None:
        """Flush the file and rename it into place; raise SpoolError if the name was taken meanwhile."""
        os.fsync(self.fd)
        if self.replace:
            os.rename(self.temporary, self.name, src_dir_fd=self.folder_fd, dst_dir_fd=self.folder_fd)
        else:
            # A hard link fails if the name exists, so a file that appeared
            # since the first check is not overwritten.
            try:
                os.link(
                    self.temporary, self.name,
                    src_dir_fd=self.folder_fd, dst_dir_fd=self.folder_fd, follow_symlinks=False,
                )
            except FileExistsError:
                raise SpoolError("SPOOL_OUTPUT_EXISTS", self.field, "the output file already exists") from None
            os.unlink(self.temporary, dir_fd=self.folder_fd)
        self.committed = True
        os.fsync(self.folder_fd)


def split_path(path: str, field: str) -> list[str]:
    """Check a spool-relative path and return its components.

    Raises:
        SpoolError: SPOOL_PATH_INVALID, naming ``field``.
    """
    def invalid(message: str) -> SpoolError:
        return SpoolError("SPOOL_PATH_INVALID", field, f"{field} {message}")

    if not path:
        raise invalid("is empty")
    if "\x00" in path:
        raise invalid("contains a NUL character")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise invalid(f"is longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise invalid("must be relative to the spool directory")

    components = path.split("/")
    for component in components:
        if component in ("", ".", ".."):
            raise invalid("must not contain empty, '.' or '..' components")
        if len(component.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise invalid(f"has a component longer than {MAX_COMPONENT_BYTES} bytes")
    if components[-1].startswith(TEMPORARY_PREFIX):
        raise invalid(f"must not name a temporary file ({TEMPORARY_PREFIX}*)")
    return components


class Spool:
    """The spool directories under one root."""

    def __init__(self, config: SpoolConfig) -> None:
        self.config = config
        self.daemon_uid = os.geteuid()

    @contextmanager
    def _identity_directory(self, identity: str, field: str) -> Iterator[tuple[int, int]]:
        """Open the identity's directory; yield its descriptor and its owner's uid."""
        if not _IDENTITY_NAME.match(identity):
            raise SpoolError(
                "SPOOL_PATH_INVALID", field, f"identity {identity!r} cannot name a spool directory",
            )
        root_fd = os.open(self.config.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                fd = os.open(identity, _DIRECTORY_FLAGS, dir_fd=root_fd)
            except FileNotFoundError:
                raise SpoolError(
                    "SPOOL_FILE_NOT_FOUND", field,
                    f"no spool directory {self.config.root / identity} for identity {identity}",
                ) from None
            except OSError as exc:
                raise _rejected_component(exc, field, root_fd, identity) from None
        finally:
            os.close(root_fd)
        try:
            status = os.fstat(fd)
            _check_directory(status, field)
            yield fd, status.st_uid
        finally:
            os.close(fd)

    @contextmanager
    def _parent(self, identity: str, path: str, field: str) -> Iterator[tuple[int, str, int]]:
        """Walk to the folder of ``path``; yield its descriptor, the last component and the owner uid."""
        components = split_path(path, field)
        with self._identity_directory(identity, field) as (directory_fd, owner):
            opened: list[int] = []
            try:
                current = directory_fd
                for component in components[:-1]:
                    try:
                        current = os.open(component, _DIRECTORY_FLAGS, dir_fd=current)
                    except FileNotFoundError:
                        raise SpoolError("SPOOL_FILE_NOT_FOUND", field, f"{field}: a folder on the path does not exist") from None
                    except OSError as exc:
                        raise _rejected_component(exc, field, current, component) from None
                    opened.append(current)
                    _check_directory(os.fstat(current), field)
                yield current, components[-1], owner
            finally:
                for fd in opened:
                    os.close(fd)

    @contextmanager
    def open_input(self, identity: str, path: str, field: str) -> Iterator[InputFile]:
        """Open a file of the identity's spool directory for reading, after every check above."""
        with self._parent(identity, path, field) as (folder_fd, name, owner):
            # lstat first, so that opening never touches a FIFO or a device.
            try:
                before = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise SpoolError("SPOOL_FILE_NOT_FOUND", field, f"{field} does not exist") from None
            _check_input(before, owner, self.daemon_uid, field)
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=folder_fd)
            except OSError as exc:
                raise _rejected_component(exc, field, folder_fd, name) from None
        try:
            status = os.fstat(fd)
            if (status.st_dev, status.st_ino) != (before.st_dev, before.st_ino):
                raise SpoolError("SPOOL_FILE_REJECTED", field, f"{field} was replaced while it was opened", "changed")
            _check_input(status, owner, self.daemon_uid, field)
            yield InputFile(fd, status.st_size, status)
        finally:
            os.close(fd)

    @contextmanager
    def create_output(
        self, identity: str, path: str, field: str, *, replace: bool, not_same_as: InputFile | None = None,
    ) -> Iterator[OutputFile]:
        """Yield a temporary file that becomes ``path`` when the caller commits it.

        The temporary file is removed unless committed, whatever ends the block.
        """
        with self._parent(identity, path, field) as (folder_fd, name, _owner):
            try:
                existing: os.stat_result | None = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                if not replace:
                    raise SpoolError("SPOOL_OUTPUT_EXISTS", field, f"{field} already exists")
                if stat.S_ISDIR(existing.st_mode):
                    raise SpoolError("SPOOL_PATH_INVALID", field, f"{field} is a folder")
                if not_same_as is not None and (existing.st_dev, existing.st_ino) == (
                    not_same_as.status.st_dev, not_same_as.status.st_ino,
                ):
                    raise SpoolError("SPOOL_PATH_INVALID", field, f"{field} is the input file")

            temporary = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}.part"
            fd = os.open(temporary, _CREATE_FLAGS, OUTPUT_MODE, dir_fd=folder_fd)
            output = OutputFile(fd, folder_fd, name, temporary, replace, field)
            try:
                # The umask must not narrow the documented mode.
                os.fchmod(fd, OUTPUT_MODE)
                yield output
            finally:
                os.close(fd)
                if not output.committed:
                    try:
                        os.unlink(temporary, dir_fd=folder_fd)
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        log.error("cannot remove temporary spool file %s: %s", temporary, exc.strerror)


def _check_directory(status: os.stat_result, field: str) -> None:
    if status.st_mode & stat.S_IWOTH:
        raise SpoolError(
            "SPOOL_FILE_REJECTED", field, f"a folder on the {field} path is writable by others", "writable_by_others",
        )


def _check_input(status: os.stat_result, owner: int, daemon_uid: int, field: str) -> None:
    if stat.S_ISLNK(status.st_mode):
        raise SpoolError("SPOOL_FILE_REJECTED", field, f"{field} is a symbolic link", "symlink")
    if not stat.S_ISREG(status.st_mode):
        raise SpoolError("SPOOL_FILE_REJECTED", field, f"{field} is not a regular file", "not_regular")
    if status.st_uid not in (owner, daemon_uid):
        raise SpoolError(
            "SPOOL_FILE_REJECTED", field,
            f"{field} is owned by uid {status.st_uid}, not by the spool directory's owner (uid {owner})", "owner",
        )
    if status.st_nlink != 1:
        raise SpoolError(
            "SPOOL_FILE_REJECTED", field, f"{field} has {status.st_nlink} hard links; exactly one is allowed",
            "hard_links",
        )


def _rejected_component(exc: OSError, field: str, folder_fd: int, name: str) -> SpoolError:
    # O_NOFOLLOW reports a symbolic link as ELOOP, but with O_DIRECTORY Linux
    # reports it as ENOTDIR, as it does a file where a folder was expected.
    # lstat tells the two apart.
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = exc.errno == errno.ELOOP
        if is_link:
            return SpoolError("SPOOL_FILE_REJECTED", field, f"{field} has a symbolic link on its path", "symlink")
        return SpoolError("SPOOL_FILE_REJECTED", field, f"{field} has a file where a folder was expected", "not_regular")
    errno_name = errno.errorcode.get(exc.errno or 0, "EIO")
    return SpoolError("SPOOL_IO_FAILED", field, f"cannot open {field}: {exc.strerror}", errno_name)
