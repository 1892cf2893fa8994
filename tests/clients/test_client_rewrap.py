"""The client's rewrap of a folder: headers out, new headers in, each file
replaced whole or not at all. A recorder stands in for the daemon's Rewrap
call; tests/daemon/test_key_lifecycle.py runs the same code against a real
daemon."""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from niemphong.clients import rewrap as rewrap_module
from niemphong.clients.envelope_header import MAGIC, DamagedEnvelope, NotAnEnvelope, header_length, read_header
from niemphong.clients.errors import ClientError, ExitCode
from niemphong.clients.progress import ProgressBar, render_bar, short_size
from niemphong.clients.rewrap import FileStatus, folder_lock, rewrap_file, rewrap_tree
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import niemphong_pb2 as pb


def make_header(tag: bytes, length: int = 100) -> bytes:
    """A preamble and a header of ``length`` bytes after it, filled with ``tag``: enough for the client."""
    return MAGIC + struct.pack(">HI", 1, length) + (tag * length)[:length]


def make_envelope(tag: bytes, body: bytes, length: int = 100) -> bytes:
    return make_header(tag, length) + body


class FakeDaemon:
    """Answers Rewrap like the daemon: a header tagged b"old" gets a longer header tagged b"new"."""

    def __init__(self) -> None:
        self.headers: list[bytes] = []
        self.fail_with: ClientError | None = None
        self.fail_confirm = False

    def __call__(self, header: bytes) -> kpb.RewrapResponse:
        self.headers.append(header)
        if self.fail_with is not None:
            raise self.fail_with
        old = header[14:17] == b"old"
        if not old and self.fail_confirm:
            raise ClientError(ExitCode.UNAVAILABLE, "reason.TOKEN_UNAVAILABLE", reason="TOKEN_UNAVAILABLE")
        new_header = make_header(b"new", 140) if old else header
        return kpb.RewrapResponse(
            artefact_id="a" * 32, level=pb.LEVEL_MAT, changed=old, header=new_header, recorded=not old,
            previous_keys=[pb.KeyRef(key_id="niemphong-mat", version=1 if old else 2, wrap_algorithm="AES-KWP")],
            keys=[pb.KeyRef(key_id="niemphong-mat", version=2, wrap_algorithm="AES-KWP")],
        )


def no_progress(files: int, total: int) -> ProgressBar:
    return ProgressBar(io.StringIO(), "vi", files, total, enabled=False)


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


# Reading headers -----------------------------------------------------------------


def test_read_header_stops_at_body(tmp_path: Path) -> None:
    path = tmp_path / "e.npe"
    path.write_bytes(make_envelope(b"old", b"BODY"))

    with path.open("rb") as handle:
        header = read_header(handle)
        rest = handle.read()

    assert header == make_header(b"old")
    assert rest == b"BODY"


@pytest.mark.parametrize("data", [b"%PDF-1.7", b"", b"\x89PNG\r\n\x1a\n0000000"])
def test_header_length_other_file_not_envelope(data: bytes) -> None:
    with pytest.raises(NotAnEnvelope):
        header_length(data)


@pytest.mark.parametrize(
    "data",
    [
        MAGIC + b"\x00",
        MAGIC + struct.pack(">HI", 2, 100),
        MAGIC + struct.pack(">HI", 1, 63),
        MAGIC + struct.pack(">HI", 1, 65537),
    ],
)
def test_header_length_bad_preamble_damaged(data: bytes) -> None:
    with pytest.raises(DamagedEnvelope):
        header_length(data)


# Rewrapping --------------------------------------------------------------------------


def test_rewrap_tree_replaces_header_keeps_body(tmp_path: Path, daemon: FakeDaemon) -> None:
    body = os.urandom(3 * 1024 * 1024 + 5)
    path = tmp_path / "sub" / "e.npe"
    path.parent.mkdir()
    path.write_bytes(make_envelope(b"old", body))
    path.chmod(0o640)

    report = rewrap_tree(tmp_path, daemon, no_progress)

    assert path.read_bytes() == make_header(b"new", 140) + body
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [outcome.status for outcome in report.outcomes] == [FileStatus.REWRAPPED]
    assert report.outcomes[0].recorded
    # The first call sends the old header only; the second shows the new one.
    assert daemon.headers == [make_header(b"old"), make_header(b"new", 140)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["e.npe"]


def test_rewrap_tree_current_file_untouched(tmp_path: Path, daemon: FakeDaemon) -> None:
    path = tmp_path / "e.npe"
    path.write_bytes(make_envelope(b"cur", b"BODY"))
    before = path.stat()

    report = rewrap_tree(tmp_path, daemon, no_progress)

    assert report.count(FileStatus.CURRENT) == 1
    assert path.stat().st_ino == before.st_ino
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_rewrap_tree_skips_other_files_and_links(tmp_path: Path, daemon: FakeDaemon) -> None:
    (tmp_path / "ghi-chu.txt").write_text("không phải phong bì", encoding="utf-8")
    (tmp_path / "e.npe").write_bytes(make_envelope(b"old", b"BODY"))
    (tmp_path / "link.npe").symlink_to(tmp_path / "e.npe")
    (tmp_path / ".niemphong-abc.part").write_bytes(make_envelope(b"old", b"partial"))

    report = rewrap_tree(tmp_path, daemon, no_progress)

    skipped = {outcome.path.name: outcome.skip_reason for outcome in report.outcomes if outcome.status is FileStatus.SKIPPED}
    assert skipped == {"ghi-chu.txt": "not_envelope", "link.npe": "symlink", ".niemphong-abc.part": "temporary"}
    assert (tmp_path / "link.npe").is_symlink()
    assert (tmp_path / ".niemphong-abc.part").exists()
    assert len(daemon.headers) == 2


def test_rewrap_tree_removes_leftovers_of_interrupted_run(tmp_path: Path, daemon: FakeDaemon) -> None:
    (tmp_path / "e.npe").write_bytes(make_envelope(b"old", b"BODY"))
    leftover = tmp_path / ".niemphong-rewrap-x1y2.part"
    leftover.write_bytes(make_header(b"new", 140) + b"BO")

    report = rewrap_tree(tmp_path, daemon, no_progress)

    assert report.leftovers_removed == 1
    assert not leftover.exists()
    assert report.count(FileStatus.REWRAPPED) == 1


def test_rewrap_single_file_removes_its_folder_leftovers(tmp_path: Path, daemon: FakeDaemon) -> None:
    path = tmp_path / "e.npe"
    path.write_bytes(make_envelope(b"old", b"BODY"))
    (tmp_path / ".niemphong-rewrap-x1y2.part").write_bytes(b"partial")

    report = rewrap_tree(path, daemon, no_progress)

    assert report.leftovers_removed == 1
    assert [outcome.path for outcome in report.outcomes] == [path]


def test_rewrap_crash_while_copying_leaves_original(tmp_path: Path, daemon: FakeDaemon) -> None:
    body = os.urandom(2 * 1024 * 1024)
    path = tmp_path / "e.npe"
    original = make_envelope(b"old", body)
    path.write_bytes(original)

    class Crash(BaseException):
        pass

    def crash(self: ProgressBar, byte_count: int) -> None:
        raise Crash()

    progress = no_progress(1, len(original))
    progress.advance = crash.__get__(progress)  # type: ignore[method-assign]
    with pytest.raises(Crash):
        rewrap_file(path, daemon, progress)

    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["e.npe"]


def test_rewrap_file_changed_while_copying_left_as_is(tmp_path: Path, daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.npe"
    path.write_bytes(make_envelope(b"old", b"BODY" * 1000))

    def append_during_copy(self: ProgressBar, byte_count: int) -> None:
        with path.open("ab") as handle:
            handle.write(b"APPENDED")

    monkeypatch.setattr(ProgressBar, "advance", append_during_copy)
    with pytest.raises(ClientError) as excinfo:
        rewrap_file(path, daemon, no_progress(1, 1))

    assert excinfo.value.message_id == "rewrap.file_changed"
    assert path.read_bytes().startswith(make_header(b"old"))
    assert [p.name for p in tmp_path.iterdir()] == ["e.npe"]


def test_rewrap_tree_per_file_failure_continues(tmp_path: Path) -> None:
    (tmp_path / "a.npe").write_bytes(make_envelope(b"bad", b"X"))
    (tmp_path / "b.npe").write_bytes(make_envelope(b"old", b"Y"))
    daemon = FakeDaemon()
    calls = daemon.__call__

    def refuse_bad(header: bytes) -> kpb.RewrapResponse:
        if header[14:17] == b"bad":
            raise ClientError(ExitCode.INTEGRITY_FAILURE, "reason.INTEGRITY_FAILURE", reason="INTEGRITY_FAILURE")
        return calls(header)

    report = rewrap_tree(tmp_path, refuse_bad, no_progress)

    assert [outcome.status for outcome in report.outcomes] == [FileStatus.FAILED, FileStatus.REWRAPPED]
    assert report.first_failure is not None
    assert report.first_failure.error is not None
    assert report.first_failure.error.exit_code == ExitCode.INTEGRITY_FAILURE


def test_rewrap_tree_damaged_envelope_fails_locally(tmp_path: Path, daemon: FakeDaemon) -> None:
    (tmp_path / "cut.npe").write_bytes(make_header(b"old")[:50])

    report = rewrap_tree(tmp_path, daemon, no_progress)

    assert report.first_failure is not None
    assert report.first_failure.error is not None
    assert report.first_failure.error.exit_code == ExitCode.INTEGRITY_FAILURE
    assert daemon.headers == []


def test_rewrap_tree_stops_when_daemon_unavailable(tmp_path: Path, daemon: FakeDaemon) -> None:
    for name in ("a.npe", "b.npe"):
        (tmp_path / name).write_bytes(make_envelope(b"old", b"X"))
    daemon.fail_with = ClientError(ExitCode.UNAVAILABLE, "error.connect", server="s", detail="d")

    with pytest.raises(ClientError) as excinfo:
        rewrap_tree(tmp_path, daemon, no_progress)

    assert excinfo.value.exit_code == ExitCode.UNAVAILABLE
    assert len(daemon.headers) == 1


def test_rewrap_unconfirmed_file_reported_for_rerun(tmp_path: Path, daemon: FakeDaemon) -> None:
    path = tmp_path / "e.npe"
    path.write_bytes(make_envelope(b"old", b"BODY"))
    daemon.fail_confirm = True

    with pytest.raises(ClientError) as excinfo:
        rewrap_tree(tmp_path, daemon, no_progress)

    # The file is whole under its new header; only the registry record is missing.
    assert path.read_bytes() == make_header(b"new", 140) + b"BODY"
    assert ("rewrap.not_recorded_hint", {}) in excinfo.value.hints


def test_rewrap_malformed_new_header_rejected(tmp_path: Path) -> None:
    path = tmp_path / "e.npe"
    original = make_envelope(b"old", b"BODY")
    path.write_bytes(original)

    def bad_daemon(header: bytes) -> kpb.RewrapResponse:
        return kpb.RewrapResponse(changed=True, header=b"\x89NPHONG\n" + b"\x00" * 10)

    with pytest.raises(ClientError) as excinfo:
        rewrap_file(path, bad_daemon)

    assert excinfo.value.message_id == "error.bad_stream"
    assert path.read_bytes() == original


def test_folder_lock_second_run_rejected(tmp_path: Path) -> None:
    with folder_lock(tmp_path):
        with pytest.raises(ClientError) as excinfo:
            with folder_lock(tmp_path):
                pass

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert excinfo.value.message_id == "rewrap.locked"


# Progress -------------------------------------------------------------------------------------


def test_render_bar_half_done() -> None:
    line = render_bar(512 * 1024, 1024 * 1024, 1, 2, "vi")

    assert line.startswith("[" + "█" * 12 + "░" * 12 + "]")
    assert " 50%" in line
    assert "1/2 tệp" in line
    assert "512,0 KiB/1,0 MiB" in line


def test_render_bar_no_bytes_counts_files() -> None:
    assert " 25%" in render_bar(0, 0, 1, 4, "en")


def test_short_size_small_and_large() -> None:
    assert short_size(512, "en") == "512 bytes"
    assert short_size(3 * 1024 * 1024, "en") == "3.0 MiB"


def test_progress_bar_draws_only_when_enabled() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, "en", 2, 100, enabled=True, clock=lambda: 0.0)

    bar.advance(50)
    bar.file_done(0)
    bar.file_done(50)
    bar.close()

    assert "\r[" in stream.getvalue()
    assert "2/2 files" in stream.getvalue()
    assert stream.getvalue().endswith("\r")
    quiet = io.StringIO()
    ProgressBar(quiet, "en", 1, 1, enabled=False).file_done(1)
    assert quiet.getvalue() == ""


def test_progress_bar_redraws_at_most_ten_times_a_second() -> None:
    stream = io.StringIO()
    now = [0.0]
    bar = ProgressBar(stream, "en", 10, 1000, enabled=True, clock=lambda: now[0])

    for _ in range(50):
        bar.advance(1)
    now[0] = 0.2
    bar.advance(1)

    assert stream.getvalue().count("\r") == 2


def make_call_counter() -> Callable[[bytes], kpb.RewrapResponse]:
    return FakeDaemon()


def test_rewrap_module_temp_names_are_skipped_by_other_runs() -> None:
    assert rewrap_module.TEMP_PREFIX.startswith(".niemphong-")
