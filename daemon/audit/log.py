"""The audit log file: durable appends in one total order, checkpoints, and recovery.

One :class:`AuditLog` owns one file. Appends take a lock, so entries get
consecutive sequence numbers in the order they reach the file, and each
append returns only after fdatasync(2) succeeded. A caller that gets
:class:`AuditUnavailable` must not perform the operation the entry describes.
Inside :meth:`AuditLog.grouped_sync` one thread's appends share one
fdatasync(2) at the end of the block instead, and nothing they allow may be
released before the block ends without an error.

A checkpoint is written after every ``checkpoint_records`` records, after
``checkpoint_seconds`` with records pending, at start and at clean shutdown.
Its MAC comes from the token; then the token's anchor for this log moves to
it. Records between checkpoints are protected by the hash chain alone until
the next checkpoint covers them.

When a write, a sync or a checkpoint fails, the log refuses every append
until a recovery attempt succeeds. Recovery runs at most once a second, from
:meth:`AuditLog.writable` or the checkpoint thread. It reopens the file,
checks that its last entry is still the one written last, removes any bytes
of the failed append, and resumes without a restart. It never removes bytes
that it did not write: a file that was cut off, rewritten or extended by
someone else stays refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from niemphong.daemon import metrics
from niemphong.daemon.audit import entries
from niemphong.daemon.audit.entries import Entry, EntryError
from niemphong.daemon.audit.token_key import Anchor, CheckpointKeyError
from niemphong.daemon.config import AuditSettings
from niemphong.daemon.errors import TokenUnavailable

log = logging.getLogger(__name__)

RECOVERY_INTERVAL_SECONDS = 1.0
# A failure that persists is logged again at most this often.
FAILURE_LOG_INTERVAL_SECONDS = 60.0
_READ_BLOCK_BYTES = 64 * 1024



class AuditUnavailable(Exception):
    """An entry could not be made durable, so the operation it describes must not go ahead."""


class AuditLogError(Exception):
    """At start: the log cannot be opened, or its tail was cut off, rewritten or replaced. The message says which."""


class CheckpointKey(Protocol):
    """The token side of the log: the checkpoint MAC and the anchors."""

    label: str

    def sign(self, data: bytes) -> bytes: ...
    def verify(self, data: bytes, mac: bytes) -> bool: ...
    def anchors(self) -> list[Anchor]: ...
    def load_anchor(self, log_id: str) -> Anchor | None: ...
    def save_anchor(self, anchor: Anchor) -> None: ...


@dataclass(frozen=True)
class LiveHead:
    """What this daemon has written to its log, taken at one instant for verification."""

    log_id: str
    seq: int
    hash: str
    durable_bytes: int
    # Size of the file at that instant, or -1 when it cannot be read.
    file_bytes: int
    # (seq, hash) of the last checkpoint and of every entry after it.
    recent: tuple[tuple[int, str], ...]


class LogFile:
    """The log's file descriptor and the system calls made on it.

    Tests subclass it to make a call fail around the real file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def open(self, create: bool) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        fd = os.open(self.path, flags, 0o600)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(f"{self.path} is not a regular file")
        self.fd = fd

    def _descriptor(self) -> int:
        if self.fd is None:
            raise OSError(f"{self.path} is not open")
        return self.fd

    def size(self) -> int:
        return os.fstat(self._descriptor()).st_size

    def is_at_path(self) -> bool:
        """Return whether the open file is still the one the path names."""
        mine = os.fstat(self._descriptor())
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)

    def check_writable(self) -> None:
        """Raise PermissionError unless the file at the path may be opened for writing now.

        A descriptor opened earlier keeps writing after chmod(2), so without
        this check a log that its operator made read-only would go on growing.
        For root, access(2) ignores the mode bits but still reports an
        immutable file (chattr +i) or a read-only file system.
        """
        if not os.access(self.path, os.W_OK):
            raise PermissionError(errno.EACCES, "the file is not writable", str(self.path))

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._descriptor(), view)
            view = view[written:]

    def sync(self) -> None:
        # fdatasync also flushes the file size, which a reader needs to find the new bytes.
        os.fdatasync(self._descriptor())

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._descriptor(), length, offset)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._descriptor(), size)

    def sync_folder(self) -> None:
        descriptor = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class AuditLog:
    """An append-only, hash-chained audit log with checkpoints authenticated by the token.

    Args:
        settings: path and checkpoint frequency.
        key: the checkpoint key and anchors in the token.
        file_factory: builds the :class:`LogFile`; tests pass one that injects faults.
        clock: seconds since the epoch, for entry times.
    """

    def __init__(
        self,
        settings: AuditSettings,
        key: CheckpointKey,
        *,
        file_factory: Callable[[Path], LogFile] = LogFile,
        clock: Callable[[], float] = time.time,
        order_source: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        # Numbers of one order shared with the other daemons on the same
        # state database; each record carries one as ``state_seq``.
        self._order_source = order_source
        self.path = settings.path
        self.key = key
        self.host = socket.gethostname()
        self._file_factory = file_factory
        self._file = file_factory(self.path)
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

        self.log_id = ""
        self._next_seq = 1
        self._head = entries.GENESIS_HASH
        self._durable_bytes = 0
        self._last_line = b""
        self._records_since_checkpoint = 0
        self._last_checkpoint_at = time.monotonic()
        self._recent: list[tuple[int, str]] = []
        self._open = False

        # Failure state: why appends are refused, the bytes of the append
        # that failed (recovery may remove exactly those), and the cause for
        # the metric, "file" or "key".
        self._failure: str | None = None
        self._failure_cause = ""
        self._failed_line = b""
        self._failed_since = 0.0
        self._last_recovery_attempt = 0.0
        self._last_failure_log = 0.0
        self._refused_while_failed = 0
        # The appends of the running grouped_sync block not yet made durable.
        self._group: _Group | None = None

    # Opening ----------------------------------------------------------------

    def open(self) -> None:
        """Open or create the log, check its tail, and write a start checkpoint.

        Raises AuditLogError when the file cannot be opened or written, or its
        tail cannot be continued, and TokenUnavailable or CheckpointKeyError
        when the token cannot authenticate checkpoints.
        """
        with self._lock:
            try:
                if self.path.exists() and self._open_existing():
                    self._continue_existing()
                else:
                    self._create_new()
            except OSError as exc:
                self._file.close()
                raise AuditLogError(f"cannot open audit log {self.path}: {exc.strerror or exc}") from exc
            except AuditUnavailable as exc:
                self._file.close()
                raise AuditLogError(f"cannot write audit log {self.path}: {exc}") from exc
            except BaseException:
                self._file.close()
                raise
            self._finish_open()

    def _open_existing(self) -> bool:
        """Open the file at the path; return whether it holds anything."""
        self._file.open(create=False)
        return self._file.size() > 0

    def _finish_open(self) -> None:
        self._open = True
        metrics.AUDIT_WRITABLE.set(1)
        self._thread = threading.Thread(target=self._run_checkpoints, name="audit-checkpoints", daemon=True)
        self._thread.start()

    def _create_new(self) -> None:
        known = [anchor for anchor in self.key.anchors() if anchor.host == self.host and anchor.path == str(self.path)]
        if known:
            newest = max(known, key=lambda anchor: anchor.seq)
            raise AuditLogError(
                f"audit log {self.path} is missing or empty, but the token holds the anchor of log "
                f"{newest.log_id} at this path with a checkpoint at entry {newest.seq}: restore the log "
                "from backup, or run niemphongd audit verify on the copy you have"
            )

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._file.fd is None:
            self._file.open(create=True)
        self._file.sync_folder()
        self.log_id = uuid.uuid4().hex
        self._write_checkpoint(entries.CHECKPOINT_CREATE, {"format": entries.FORMAT})
        log.info("created audit log %s (log id %s)", self.path, self.log_id)

    def _continue_existing(self) -> None:
        size = self._file.size()
        first = self._read_first_entry(size)
        self.log_id = str(first.get("log_id", ""))
        if first["kind"] != entries.CHECKPOINT or first["seq"] != 1 or not self.log_id:
            raise AuditLogError(f"audit log {self.path} does not start with its creation checkpoint")

        end = self._complete_length(size)
        torn_bytes = size - end
        tail = self._read_tail(end)
        self._check_tail(tail)

        if torn_bytes:
            # Only a crash in the middle of an append leaves an unterminated
            # line, and its operation was never acknowledged.
            log.warning("audit log %s ends in %d bytes of an incomplete entry; removing them", self.path, torn_bytes)
            self._file.truncate(end)
            self._file.sync()

        last_offset, last_line, last = tail[-1]
        self._next_seq = last["seq"] + 1
        self._head = last["hash"]
        self._durable_bytes = end
        self._last_line = last_line
        uncovered = [entry for _, _, entry in tail if entry["seq"] > _last_checkpoint(tail)["seq"]]
        self._recent = [(entry["seq"], entry["hash"]) for _, _, entry in tail[-(len(uncovered) + 1):]]

        extra: dict[str, Any] = {}
        if uncovered:
            extra["recovered"] = {"from_seq": uncovered[0]["seq"], "to_seq": uncovered[-1]["seq"]}
            log.warning(
                "audit log %s: entries %d to %d follow the last checkpoint of an unclean stop; "
                "covering them with a start checkpoint",
                self.path, uncovered[0]["seq"], uncovered[-1]["seq"],
            )
        if torn_bytes:
            extra["torn_bytes"] = torn_bytes
        self._write_checkpoint(entries.CHECKPOINT_START, extra)
        log.info("opened audit log %s (log id %s) at entry %d", self.path, self.log_id, self._next_seq - 1)

    def _read_first_entry(self, size: int) -> Entry:
        head = self._file.read(0, min(size, entries.MAX_LINE_BYTES + 1))
        line, newline, _ = head.partition(b"\n")
        if not newline:
            raise AuditLogError(f"audit log {self.path}: the first line is incomplete or too long")
        try:
            return entries.parse_entry(line)
        except EntryError as exc:
            raise AuditLogError(f"audit log {self.path}: the first line is not an entry ({exc})") from None

    def _complete_length(self, size: int) -> int:
        """Return the length of the file up to and including its last newline."""
        position = size
        while position > 0:
            start = max(0, position - _READ_BLOCK_BYTES)
            block = self._file.read(start, position - start)
            index = block.rfind(b"\n")
            if index >= 0:
                return start + index + 1
            position = start
        return 0

    def _read_tail(self, end: int) -> list[tuple[int, bytes, Entry]]:
        """Read entries backwards from ``end`` to the checkpoint the token's anchor names (or the last one)."""
        tail: list[tuple[int, bytes, Entry]] = []
        anchor = self.key.load_anchor(self.log_id)
        for offset, line in _lines_backward(self._file.read, end):
            try:
                entry = entries.parse_entry(line)
            except EntryError as exc:
                raise AuditLogError(
                    f"audit log {self.path}: the line at byte {offset} is not an entry ({exc}); "
                    "run niemphongd audit verify"
                ) from None
            if not tail and anchor is not None and entry["seq"] < anchor.seq:
                raise AuditLogError(
                    f"audit log {self.path} ends at entry {entry['seq']}, but the token's anchor names a "
                    f"checkpoint at entry {anchor.seq}: the log was cut off"
                )
            tail.append((offset, line, entry))
            if entry["kind"] == entries.CHECKPOINT and (anchor is None or entry["seq"] <= anchor.seq):
                break
        else:
            raise AuditLogError(f"audit log {self.path} has no checkpoint the token's anchor accepts")
        tail.reverse()

        if anchor is not None:
            at_anchor = next((entry for _, _, entry in tail if entry["seq"] == anchor.seq), None)
            if at_anchor is None or at_anchor["hash"] != anchor.hash:
                raise AuditLogError(
                    f"audit log {self.path}: entry {anchor.seq} differs from the checkpoint the token's "
                    "anchor names; run niemphongd audit verify"
                )
        else:
            log.warning("token has no anchor for audit log %s (log id %s); trusting its last checkpoint", self.path, self.log_id)
        return tail

    def _check_tail(self, tail: list[tuple[int, bytes, Entry]]) -> None:
        first = tail[0][2]
        if first.get("reason") == entries.CHECKPOINT_SHUTDOWN and len(tail) > 1:
            # The daemon writes nothing after its shutdown checkpoint, so
            # whatever follows it was added by someone else.
            raise AuditLogError(
                f"audit log {self.path}: entries {first['seq'] + 1} to {tail[-1][2]['seq']} follow the shutdown "
                f"checkpoint {first['seq']}, so niemphongd did not write them; run niemphongd audit verify"
            )
        previous = first
        for offset, _, entry in tail:
            if entries.entry_hash(entry) != entry["hash"]:
                raise AuditLogError(f"audit log {self.path}: entry {entry['seq']} at byte {offset} was altered")
            if entry["kind"] == entries.CHECKPOINT and not self.key.verify(entries.mac_input(entry), _mac_bytes(entry)):
                raise AuditLogError(
                    f"audit log {self.path}: checkpoint {entry['seq']} does not verify with the token's key; "
                    "run niemphongd audit verify"
                )
            if entry is not first and (entry["seq"] != previous["seq"] + 1 or entry["prev"] != previous["hash"]):
                raise AuditLogError(
                    f"audit log {self.path}: entry {entry['seq']} at byte {offset} does not follow entry "
                    f"{previous['seq']}; run niemphongd audit verify"
                )
            previous = entry

    # Appending --------------------------------------------------------------

    def append(self, fields: Mapping[str, Any]) -> Entry:
        """Append one record and return it once it is durable.

        Writes a checkpoint first when one is due. Raises AuditUnavailable
        when the record or that checkpoint cannot be made durable.
        """
        with self._lock:
            self._ensure_ready()
            if self._checkpoint_due():
                reason = (
                    entries.CHECKPOINT_RECORDS
                    if self._records_since_checkpoint >= self.settings.checkpoint_records
                    else entries.CHECKPOINT_INTERVAL
                )
                self._write_checkpoint(reason, {})
            record = {**fields, "kind": entries.RECORD}
            state_seq = self._next_state_seq()
            if state_seq is not None:
                record["state_seq"] = state_seq
            entry = self._write_entry(record)
            self._records_since_checkpoint += 1
            return entry

    @contextlib.contextmanager
    def grouped_sync(self) -> Iterator[None]:
        """Hold the log for the calling thread and make its appends durable with one fdatasync at the end.

        Appends inside the block return before their records are durable.
        When the block ends, one fdatasync covers them all. If it fails, or
        an append inside the block failed, every record of the block is
        removed from the log's state as a failed append's is, and
        AuditUnavailable is raised at the end of the block: the caller must
        then undo and release nothing that those appends allowed. A
        checkpoint inside the block is made durable at once, with the
        records before it. Other threads' appends wait until the block ends.
        """
        with self._lock:
            if self._group is not None:
                yield
                return
            self._group = _Group()
            try:
                yield
            finally:
                group, self._group = self._group, None
                self._finish_group(group)

    def _snapshot(self) -> _State:
        return _State(
            self._next_seq, self._head, self._durable_bytes, self._last_line, list(self._recent),
            self._records_since_checkpoint,
        )

    def _restore(self, state: _State) -> None:
        self._next_seq, self._head, self._durable_bytes = state.next_seq, state.head, state.durable_bytes
        self._last_line, self._recent = state.last_line, state.recent
        self._records_since_checkpoint = state.records_since_checkpoint

    def _finish_group(self, group: _Group) -> None:
        if group.failed:
            raise AuditUnavailable(f"audit log {self.path} cannot be written: {self._failure}")
        if not group.lines:
            return
        try:
            self._file.sync()
        except OSError as exc:
            self._drop_group(group, b"")
            self._fail("file", f"{exc.strerror or exc} (errno {exc.errno})")
            raise AuditUnavailable(f"cannot write the audit log: {exc.strerror or exc}") from exc

    def _drop_group(self, group: _Group, failed_line: bytes) -> None:
        """Forget the group's records that are not durable, so that recovery removes their bytes."""
        self._failed_line = b"".join(group.lines) + failed_line
        if group.state is not None:
            self._restore(group.state)
        group.lines.clear()
        group.state = None
        group.failed = True
    def _next_state_seq(self) -> int | None:
        """Take the record's number in the order shared across daemons; None without one.

        Taken under the log's lock, so the numbers rise along this log. When
        the database cannot give one the record is still written, without
        ``state_seq``: a record of a call that failed because the database is
        away must not be lost for want of a number. The merge places such a
        record right after the one before it in its own log.
        """
        if self._order_source is None:
            return None
        try:
            return self._order_source()
        except Exception as exc:  # any database failure; the record matters more than its number
            log.warning("audit record in %s written without state_seq: %s", self.path, exc)
            return None

    def _checkpoint_due(self) -> bool:
        if self._records_since_checkpoint == 0:
            return False
        if self._records_since_checkpoint >= self.settings.checkpoint_records:
            return True
        return time.monotonic() - self._last_checkpoint_at >= self.settings.checkpoint_seconds

    def _ensure_ready(self) -> None:
        if not self._open:
            raise AuditUnavailable(f"audit log {self.path} is not open")
        if self._group is not None and self._group.failed:
            # The block's records are lost; it fails as a whole, so recovery waits until it ends.
            raise AuditUnavailable(f"audit log {self.path} cannot be written: {self._failure}")
        if self._failure is not None:
            self._try_recover()
        if self._failure is not None:
            self._refused_while_failed += 1
            raise AuditUnavailable(f"audit log {self.path} cannot be written: {self._failure}")

    def _write_entry(self, fields: Mapping[str, Any]) -> Entry:
        entry: Entry = {
            "seq": self._next_seq,
            "prev": self._head,
            "time": entries.utc_timestamp(_utc_from(self._clock())),
            **fields,
        }
        if entry["kind"] == entries.CHECKPOINT:
            try:
                entry["mac"] = self.key.sign(entries.mac_input(entry)).hex()
            except (TokenUnavailable, CheckpointKeyError) as exc:
                self._fail("key", f"the checkpoint key cannot be used: {exc}")
                raise AuditUnavailable(str(exc)) from exc
        line = entries.encode_entry(entry)
        # A checkpoint is durable before the token's anchor moves to it.
        self._write_line(line, durable=entry["kind"] == entries.CHECKPOINT or self._group is None)

        self._next_seq += 1
        self._head = entry["hash"]
        self._durable_bytes += len(line)
        self._last_line = line
        self._recent.append((entry["seq"], entry["hash"]))
        if entry["kind"] == entries.CHECKPOINT:
            metrics.AUDIT_CHECKPOINTS.inc()
        else:
            metrics.AUDIT_RECORDS.inc()
        return entry

    def _write_line(self, line: bytes, durable: bool = True) -> None:
        """Append ``line``, and fdatasync unless ``durable`` is False inside grouped_sync."""
        group = self._group
        try:
            size = self._file.size()
            if size != self._durable_bytes:
                raise _Tampered(f"the file has {size} bytes where {self._durable_bytes} were written")
            if not self._file.is_at_path():
                raise _Tampered("the path no longer names the open file")
            self._file.check_writable()
        except _Tampered as exc:
            if group is not None:
                self._drop_group(group, b"")
            self._fail("file", f"{exc}; another process changed the log")
            raise AuditUnavailable(str(exc)) from None
        except OSError as exc:
            if group is not None:
                self._drop_group(group, b"")
            self._fail("file", f"cannot check the file: {exc.strerror or exc}")
            raise AuditUnavailable(str(exc)) from exc

        try:
            self._file.append(line)
            if durable:
                self._file.sync()
        except OSError as exc:
            if group is not None:
                self._drop_group(group, line)
            else:
                self._failed_line = line
            self._fail("file", f"{exc.strerror or exc} (errno {exc.errno})")
            raise AuditUnavailable(f"cannot write the audit log: {exc.strerror or exc}") from exc
        if group is not None:
            if durable:
                # This sync also covered the group's earlier lines.
                group.lines.clear()
                group.state = None
            else:
                if not group.lines:
                    # The entries so far are durable; this line is not yet in the state.
                    group.state = self._snapshot()
                group.lines.append(line)

    def _write_checkpoint(self, reason: str, extra: Mapping[str, Any]) -> Entry:
        entry = self._write_entry({
            "kind": entries.CHECKPOINT,
            "log_id": self.log_id,
            "reason": reason,
            "key": self.key.label,
            **extra,
        })
        self._records_since_checkpoint = 0
        self._last_checkpoint_at = time.monotonic()
        self._recent = [(entry["seq"], entry["hash"])]

        anchor = Anchor(log_id=self.log_id, host=self.host, path=str(self.path), seq=entry["seq"], hash=entry["hash"])
        try:
            self.key.save_anchor(anchor)
        except (TokenUnavailable, CheckpointKeyError) as exc:
            self._fail("key", f"the token's anchor cannot be updated: {exc}")
            raise AuditUnavailable(str(exc)) from exc
        return entry

    # Failure and recovery ---------------------------------------------------

    def _fail(self, cause: str, reason: str) -> None:
        metrics.AUDIT_WRITE_FAILURES.inc()
        metrics.AUDIT_WRITABLE.set(0)
        now = time.monotonic()
        if self._failure is None:
            self._failed_since = now
            self._refused_while_failed = 0
            self._last_failure_log = now
            log.error(
                "audit log %s cannot be written: %s; refusing audited operations until it can",
                self.path, reason,
            )
        elif now - self._last_failure_log >= FAILURE_LOG_INTERVAL_SECONDS:
            self._last_failure_log = now
            log.error("audit log %s still cannot be written: %s", self.path, reason)
        self._failure = reason
        self._failure_cause = cause
        self._last_recovery_attempt = now
        if cause == "file":
            try:
                self._file.close()
            except OSError as exc:
                log.warning("closing audit log %s failed: %s", self.path, exc)

    def _try_recover(self) -> None:
        now = time.monotonic()
        if now - self._last_recovery_attempt < RECOVERY_INTERVAL_SECONDS:
            return
        self._last_recovery_attempt = now

        if self._file.fd is None:
            try:
                self._reopen()
            except (OSError, _Tampered) as exc:
                self._failure = str(exc) if isinstance(exc, _Tampered) else f"{exc.strerror or exc} (errno {exc.errno})"
                self._file.close()
                if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_SECONDS:
                    self._last_failure_log = now
                    log.error("audit log %s still cannot be written: %s", self.path, self._failure)
                return

        # After a failed checkpoint, or with records the failure left
        # uncovered, a checkpoint comes first: it also proves the token works.
        if self._failure_cause == "key" or self._records_since_checkpoint:
            try:
                self._write_checkpoint(entries.CHECKPOINT_INTERVAL, {})
            except AuditUnavailable:
                return
        self._failure = None

        log.warning(
            "audit log %s is writable again after %.0f s; %d operations were refused meanwhile",
            self.path, now - self._failed_since, self._refused_while_failed,
        )
        self._failed_line = b""
        metrics.AUDIT_WRITABLE.set(1)

    def _reopen(self) -> None:
        """Reopen the log after a failure and remove the bytes of the append that failed."""
        self._file.close()
        self._file = self._file_factory(self.path)
        self._file.open(create=False)
        size = self._file.size()
        if size < self._durable_bytes:
            raise _Tampered(f"the file has {size} bytes but {self._durable_bytes} were written: it was cut off")

        last_start = self._durable_bytes - len(self._last_line)
        if self._file.read(last_start, len(self._last_line)) != self._last_line:
            raise _Tampered(f"entry {self._next_seq - 1} differs from the one written")
        if size > self._durable_bytes:
            extra = self._file.read(self._durable_bytes, size - self._durable_bytes)
            if not (self._failed_line and self._failed_line.startswith(extra)):
                raise _Tampered(f"{size - self._durable_bytes} bytes this daemon did not write follow entry {self._next_seq - 1}")
            self._file.truncate(self._durable_bytes)
        self._file.sync()

    def writable(self) -> bool:
        """Return whether appends are accepted now; tries a recovery at most once a second when they are not.

        While the log is healthy this costs two metadata calls (stat(2) and
        access(2)) and no read or write, so callers may ask before every operation.
        """
        with self._lock:
            if self._open and self._failure is None:
                self._probe()
            if self._open and self._failure is not None:
                self._try_recover()
            return self._open and self._failure is None

    def _probe(self) -> None:
        """Fail the log now when its file was replaced or made unwritable, before an operation starts."""
        try:
            if not self._file.is_at_path():
                raise _Tampered("the path no longer names the open file")
            self._file.check_writable()
        except _Tampered as exc:
            self._fail("file", f"{exc}; another process changed the log")
        except OSError as exc:
            self._fail("file", f"{exc.strerror or exc} (errno {exc.errno})")

    # Reading ----------------------------------------------------------------

    def live_head(self) -> LiveHead:
        """Return what this daemon has written, for comparing with the file."""
        with self._lock:
            try:
                file_bytes = self.path.stat().st_size if self.path.is_file() else -1
            except OSError:
                file_bytes = -1
            return LiveHead(
                log_id=self.log_id,
                seq=self._next_seq - 1,
                hash=self._head,
                durable_bytes=self._durable_bytes,
                file_bytes=file_bytes,
                recent=tuple(self._recent),
            )

    # Background checkpoints and shutdown --------------------------------------

    def _run_checkpoints(self) -> None:
        tick = min(1.0, self.settings.checkpoint_seconds / 2)
        while not self._stopping.wait(tick):
            with self._lock:
                if not self._open:
                    return
                if self._failure is not None:
                    self._try_recover()
                    continue
                if self._checkpoint_due():
                    try:
                        self._write_checkpoint(entries.CHECKPOINT_INTERVAL, {})
                    except AuditUnavailable:
                        pass  # _fail has logged it and appends are refused until recovery.

    def close(self) -> None:
        """Write the shutdown checkpoint and close the file."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if not self._open:
                return
            if self._failure is None:
                try:
                    self._write_checkpoint(entries.CHECKPOINT_SHUTDOWN, {})
                except AuditUnavailable as exc:
                    log.error("audit log %s closed without a shutdown checkpoint: %s", self.path, exc)
            else:
                log.error("audit log %s closed without a shutdown checkpoint: %s", self.path, self._failure)
            self._open = False
            self._file.close()
            metrics.AUDIT_WRITABLE.set(0)


class _Tampered(Exception):
    """The file differs from what this daemon wrote."""


def _utc_from(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _mac_bytes(entry: Entry) -> bytes:
    try:
        return bytes.fromhex(str(entry.get("mac", "")))
    except ValueError:
        return b""


def _last_checkpoint(tail: list[tuple[int, bytes, Entry]]) -> Entry:
    return next(entry for _, _, entry in reversed(tail) if entry["kind"] == entries.CHECKPOINT)


def _lines_backward(read: Callable[[int, int], bytes], end: int) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, line) for each line of the file before ``end``, last first.

    ``end`` must follow a newline. Lines keep their newline. Raises
    AuditLogError for a line longer than the entry bound.
    """
    pending = b""
    position = end
    while True:
        index = pending.rfind(b"\n", 0, len(pending) - 1)
        if index >= 0:
            yield position + index + 1, pending[index + 1:]
            pending = pending[:index + 1]
            continue
        if position == 0:
            if pending:
                yield 0, pending
            return
        if len(pending) > entries.MAX_LINE_BYTES + 1:
            raise AuditLogError(f"a line ending at byte {position + len(pending)} is longer than any entry")
        step = min(_READ_BLOCK_BYTES, position)
        position -= step
        pending = read(position, step) + pending


@dataclass
class _State:
    """The log's position after its last durable entry, to return to when later appends fail."""

    next_seq: int
    head: str
    durable_bytes: int
    last_line: bytes
    recent: list[tuple[int, str]]
    records_since_checkpoint: int


@dataclass
class _Group:
    """The appends of one grouped_sync block since its last fdatasync."""

    state: _State | None = None
    lines: list[bytes] = field(default_factory=list)
    failed: bool = False
