"""Atomic output files: whole or absent, never partial, never over the input."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from niemphong.clients.atomic import atomic_output, check_output_path
from niemphong.clients.cli import TerminatedBySignal, raise_on_termination
from niemphong.clients.errors import ClientError, ExitCode


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_atomic_output_success_writes_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with atomic_output(out, force=False) as handle:
        handle.write(b"content")

    assert out.read_bytes() == b"content"
    assert leftovers(tmp_path) == ["plain.pdf"]


def test_atomic_output_mode_0600(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with atomic_output(out, force=False) as handle:
        handle.write(b"secret")

    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_atomic_output_failing_write_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(RuntimeError):
        with atomic_output(out, force=False) as handle:
            handle.write(b"half of the plaintext")
            raise RuntimeError("stream broke")

    assert leftovers(tmp_path) == []


def test_atomic_output_keyboard_interrupt_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(KeyboardInterrupt):
        with atomic_output(out, force=False) as handle:
            handle.write(b"x" * 4096)
            raise KeyboardInterrupt

    assert leftovers(tmp_path) == []


def test_atomic_output_failure_keeps_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"
    out.write_bytes(b"old")

    with pytest.raises(RuntimeError):
        with atomic_output(out, force=True) as handle:
            handle.write(b"new")
            raise RuntimeError("stream broke")

    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["plain.pdf"]


def test_atomic_output_force_replaces(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"
    out.write_bytes(b"old")

    with atomic_output(out, force=True) as handle:
        handle.write(b"new")

    assert out.read_bytes() == b"new"


def test_atomic_output_file_appearing_meanwhile_kept(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(ClientError) as excinfo:
        with atomic_output(out, force=False) as handle:
            handle.write(b"new")
            out.write_bytes(b"someone else's")

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert out.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == ["plain.pdf"]


def test_atomic_output_unwritable_folder_reports_path(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "plain.pdf"

    with pytest.raises(ClientError) as excinfo:
        with atomic_output(out, force=False):
            pass

    assert excinfo.value.exit_code == ExitCode.FAILURE
    assert str(out) in excinfo.value.localize("en")


def test_check_output_existing_rejected_without_force(tmp_path: Path) -> None:
    out = tmp_path / "e.np"
    out.write_bytes(b"")

    with pytest.raises(ClientError) as excinfo:
        check_output_path(out, force=False, inputs=[])

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert excinfo.value.message_id == "usage.out_exists"


def test_check_output_existing_allowed_with_force(tmp_path: Path) -> None:
    out = tmp_path / "e.np"
    out.write_bytes(b"")

    check_output_path(out, force=True, inputs=[tmp_path / "scan.pdf"])


def test_check_output_input_path_rejected(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"scan")

    for out in (source, tmp_path / "." / "scan.pdf"):
        with pytest.raises(ClientError) as excinfo:
            check_output_path(out, force=True, inputs=[source])
        assert excinfo.value.message_id == "usage.out_is_input"


def test_check_output_hard_link_to_input_rejected(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"scan")
    alias = tmp_path / "alias.pdf"
    os.link(source, alias)

    with pytest.raises(ClientError) as excinfo:
        check_output_path(alias, force=True, inputs=[source])

    assert excinfo.value.message_id == "usage.out_is_input"


def test_check_output_folder_rejected(tmp_path: Path) -> None:
    with pytest.raises(ClientError) as excinfo:
        check_output_path(tmp_path, force=True, inputs=[])

    assert excinfo.value.message_id == "usage.out_is_dir"


def test_check_output_missing_folder_rejected(tmp_path: Path) -> None:
    with pytest.raises(ClientError) as excinfo:
        check_output_path(tmp_path / "nope" / "e.np", force=False, inputs=[])

    assert excinfo.value.message_id == "usage.out_dir_missing"


def test_atomic_output_sigterm_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(TerminatedBySignal):
        with raise_on_termination(), atomic_output(out, force=False) as handle:
            handle.write(b"half of the plaintext")
            os.kill(os.getpid(), signal.SIGTERM)
            # Python runs the handler between bytecodes, so wait a moment for it.
            for _ in range(100):
                time.sleep(0.01)

    assert leftovers(tmp_path) == []


def test_raise_on_termination_restores_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)

    with raise_on_termination():
        assert signal.getsignal(signal.SIGTERM) is not before

    assert signal.getsignal(signal.SIGTERM) is before


def test_check_output_fifo_rejected_with_force(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    with pytest.raises(ClientError) as excinfo:
        check_output_path(fifo, force=True, inputs=[])

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert excinfo.value.message_id == "usage.out_not_regular"
    assert "FIFO" in excinfo.value.localize("en")
    assert "FIFO" in excinfo.value.localize("vi")


def test_check_output_symlink_rejected_with_force(tmp_path: Path) -> None:
    target = tmp_path / "target.pdf"
    target.write_bytes(b"kept")
    link = tmp_path / "link.pdf"
    link.symlink_to(target)

    with pytest.raises(ClientError) as excinfo:
        check_output_path(link, force=True, inputs=[])

    assert excinfo.value.message_id == "usage.out_not_regular"
    assert "symbolic link" in excinfo.value.localize("en")
    assert str(link) in excinfo.value.localize("en")


@pytest.mark.parametrize("target_kind", ["folder", "missing"])
def test_check_output_symlink_to_folder_or_nothing_rejected(tmp_path: Path, target_kind: str) -> None:
    target = tmp_path / "target"
    if target_kind == "folder":
        target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)

    with pytest.raises(ClientError) as excinfo:
        check_output_path(link, force=True, inputs=[])

    assert excinfo.value.message_id == "usage.out_not_regular"


def test_atomic_output_force_keeps_fifo_created_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(ClientError) as excinfo:
        with atomic_output(out, force=True) as handle:
            handle.write(b"secret")
            os.mkfifo(out)

    assert excinfo.value.message_id == "usage.out_not_regular"
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert leftovers(tmp_path) == ["plain.pdf"]


def test_atomic_output_force_keeps_symlink_created_meanwhile(tmp_path: Path) -> None:
    target = tmp_path / "target.pdf"
    target.write_bytes(b"kept")
    out = tmp_path / "plain.pdf"

    with pytest.raises(ClientError) as excinfo:
        with atomic_output(out, force=True) as handle:
            handle.write(b"secret")
            out.symlink_to(target)

    assert excinfo.value.message_id == "usage.out_not_regular"
    assert out.is_symlink()
    assert target.read_bytes() == b"kept"
    assert leftovers(tmp_path) == ["plain.pdf", "target.pdf"]


def test_atomic_output_nameless_while_writing(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with atomic_output(out, force=False) as handle:
        handle.write(b"secret")
        handle.flush()
        during = leftovers(tmp_path)

    assert during == []
    assert out.read_bytes() == b"secret"


@pytest.fixture
def without_tmpfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make open(O_TMPFILE) fail as on a file system without it."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.usefixtures("without_tmpfile")
def test_atomic_output_fallback_writes_through_part_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with atomic_output(out, force=False) as handle:
        handle.write(b"secret")
        handle.flush()
        during = leftovers(tmp_path)

    assert len(during) == 1
    assert during[0].startswith(".niemphong-") and during[0].endswith(".part")
    assert out.read_bytes() == b"secret"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == ["plain.pdf"]


@pytest.mark.usefixtures("without_tmpfile")
def test_atomic_output_fallback_failure_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(RuntimeError):
        with atomic_output(out, force=False) as handle:
            handle.write(b"half of the plaintext")
            raise RuntimeError("stream broke")

    assert leftovers(tmp_path) == []


@pytest.mark.usefixtures("without_tmpfile")
def test_atomic_output_fallback_force_keeps_fifo(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"

    with pytest.raises(ClientError):
        with atomic_output(out, force=True) as handle:
            handle.write(b"secret")
            os.mkfifo(out)

    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert leftovers(tmp_path) == ["plain.pdf"]


@pytest.mark.usefixtures("without_tmpfile")
def test_atomic_output_fallback_force_replaces(tmp_path: Path) -> None:
    out = tmp_path / "plain.pdf"
    out.write_bytes(b"old")

    with atomic_output(out, force=True) as handle:
        handle.write(b"new")

    assert out.read_bytes() == b"new"
    assert leftovers(tmp_path) == ["plain.pdf"]


FULL_OUTPUT_PROGRAM = """
import resource, signal, sys
from pathlib import Path
from niemphong.clients.atomic import atomic_output
from niemphong.clients.errors import ClientError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
try:
    with atomic_output(Path(sys.argv[1]), force=False) as handle:
        for _ in range(64):
            handle.write(bytes(4096))
            handle.flush()
except ClientError as exc:
    print(exc.message_id, exc.params["path"], sep="\\n")
"""


def test_atomic_output_full_file_system_names_output(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel fail the write with EFBIG, as a full
    # file system fails it with ENOSPC, and neither names the file.
    out = tmp_path / "plain.pdf"

    result = subprocess.run(
        [sys.executable, "-c", FULL_OUTPUT_PROGRAM, str(out)], capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["error.write_failed", str(out)]
    assert leftovers(tmp_path) == []
