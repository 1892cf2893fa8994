"""Removing sources, the batch progress bar and signals deferred during streams."""

from __future__ import annotations

import hashlib
import io
import os
import signal
from pathlib import Path

import pytest

from niemphong.clients.batch_scan import ProgressBar
from niemphong.clients.errors import ClientError, ExitCode
from niemphong.clients.hygiene import remove_file
from niemphong.clients.interrupts import deferred_interrupts


def write_scan(path: Path, data: bytes = b"%PDF-1.4 scan") -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_remove_file_unlinks_verified_source(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    digest = write_scan(source)

    remove_file(source, digest)

    assert not source.exists()


def test_remove_file_keeps_changed_source(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    digest = write_scan(source)
    source.write_bytes(b"%PDF-1.4 rescanned")

    with pytest.raises(ClientError) as error:
        remove_file(source, digest)

    assert error.value.exit_code == ExitCode.INTEGRITY_FAILURE
    assert source.read_bytes() == b"%PDF-1.4 rescanned"


def test_remove_file_keeps_hard_linked_source(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    digest = write_scan(source)
    os.link(source, tmp_path / "other-name.pdf")

    with pytest.raises(ClientError) as error:
        remove_file(source, digest)

    assert error.value.message_id == "hygiene.hard_links"
    assert source.read_bytes() == b"%PDF-1.4 scan"


def test_remove_file_overwrites_before_unlink(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    digest = write_scan(source, b"secret page" * 100)
    # A second descriptor still reads the inode after the name is gone.
    with source.open("rb") as reader:
        remove_file(source, digest)
        remaining = reader.read()

    assert remaining == bytes(len(b"secret page" * 100))


def test_progress_bar_line_shows_fraction() -> None:
    assert ProgressBar.line(1, 4, "12/BB-TCT", width=8) == "[##......] 1/4 12/BB-TCT"
    assert ProgressBar.line(4, 4, "x", width=8) == "[########] 4/4 x"


def test_progress_bar_silent_off_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, 3)

    bar.show(1, "row")
    bar.clear()

    assert stream.getvalue() == ""


def test_deferred_interrupt_raised_at_check() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts() as interrupts:
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after signal")
            interrupts.check()
            reached.append("after check")

    assert reached == ["after signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_deferred_interrupt_raised_on_exit() -> None:
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
