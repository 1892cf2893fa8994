"""Path and file checks of local spool mode, on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from niemphong.daemon.spool import Spool, SpoolConfig, SpoolError, split_path

IDENTITY = "scanner"


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    (tmp_path / IDENTITY).mkdir(mode=0o700)
    return Spool(SpoolConfig(root=tmp_path, workers=2))


def folder(spool: Spool) -> Path:
    return spool.config.root / IDENTITY


def spool_error(call, *args, **kwargs) -> SpoolError:
    with pytest.raises(SpoolError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def read_input(spool: Spool, path: str) -> bytes:
    with spool.open_input(IDENTITY, path, "source_path") as source:
        return os.pread(source.fd, source.size, 0)


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../other/scan.pdf", "a/../scan.pdf", "./scan.pdf", "a//scan.pdf", "scan.pdf/",
     "a\x00b", "x" * 256, "a/" * 600, ".niemphong-0123.part"],
)
def test_split_path_invalid_rejected(path: str) -> None:
    error = spool_error(split_path, path, "source_path")

    assert error.reason == "SPOOL_PATH_INVALID"
    assert error.field == "source_path"


def test_split_path_nested_accepted() -> None:
    assert split_path("lô-7/trang 1.pdf", "source_path") == ["lô-7", "trang 1.pdf"]


def test_open_input_regular_file_read(spool: Spool) -> None:
    (folder(spool) / "batch").mkdir()
    (folder(spool) / "batch" / "scan.pdf").write_bytes(b"%PDF-1.7 scan")

    assert read_input(spool, "batch/scan.pdf") == b"%PDF-1.7 scan"


def test_open_input_missing_not_found(spool: Spool) -> None:
    assert spool_error(read_input, spool, "scan.pdf").reason == "SPOOL_FILE_NOT_FOUND"


def test_open_input_missing_identity_folder_not_found(spool: Spool) -> None:
    with pytest.raises(SpoolError) as excinfo:
        with spool.open_input("viewer", "scan.pdf", "source_path"):
            pass

    assert excinfo.value.reason == "SPOOL_FILE_NOT_FOUND"


def test_open_input_unusable_identity_name_rejected(spool: Spool) -> None:
    with pytest.raises(SpoolError) as excinfo:
        with spool.open_input("../scanner", "scan.pdf", "source_path"):
            pass

    assert excinfo.value.reason == "SPOOL_PATH_INVALID"


def test_open_input_symlink_rejected(spool: Spool, tmp_path: Path) -> None:
    secret = tmp_path / "token.pin"
    secret.write_text("1234")
    (folder(spool) / "scan.pdf").symlink_to(secret)

    error = spool_error(read_input, spool, "scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "symlink"


def test_open_input_symlinked_folder_rejected(spool: Spool, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "scan.pdf").write_bytes(b"x")
    (folder(spool) / "batch").symlink_to(outside)

    error = spool_error(read_input, spool, "batch/scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "symlink"


def test_open_input_symlinked_identity_folder_rejected(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "scan.pdf").write_bytes(b"x")
    (tmp_path / IDENTITY).symlink_to(real)
    spool = Spool(SpoolConfig(root=tmp_path, workers=1))

    error = spool_error(read_input, spool, "scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "symlink"


def test_open_input_hard_link_rejected(spool: Spool, tmp_path: Path) -> None:
    secret = tmp_path / "token.pin"
    secret.write_text("1234")
    os.link(secret, folder(spool) / "scan.pdf")

    error = spool_error(read_input, spool, "scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "hard_links"


def test_open_input_fifo_rejected(spool: Spool) -> None:
    os.mkfifo(folder(spool) / "scan.pdf")

    error = spool_error(read_input, spool, "scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "not_regular"


def test_open_input_file_as_folder_rejected(spool: Spool) -> None:
    (folder(spool) / "batch").write_bytes(b"x")

    error = spool_error(read_input, spool, "batch/scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "not_regular"


def test_open_input_world_writable_folder_rejected(spool: Spool) -> None:
    batch = folder(spool) / "batch"
    batch.mkdir()
    (batch / "scan.pdf").write_bytes(b"x")
    batch.chmod(0o777)

    error = spool_error(read_input, spool, "batch/scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "writable_by_others"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_open_input_foreign_owner_rejected(tmp_path: Path) -> None:
    # The identity's folder belongs to uid 4242, the file to uid 4343; the
    # daemon (root here) owns neither.
    (tmp_path / IDENTITY).mkdir(mode=0o700)
    os.chown(tmp_path / IDENTITY, 4242, 4242)
    scan = tmp_path / IDENTITY / "scan.pdf"
    scan.write_bytes(b"x")
    os.chown(scan, 4343, 4343)
    spool = Spool(SpoolConfig(root=tmp_path, workers=1))

    error = spool_error(read_input, spool, "scan.pdf")

    assert error.reason == "SPOOL_FILE_REJECTED"
    assert error.problem == "owner"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_open_input_folder_owner_accepted(tmp_path: Path) -> None:
    (tmp_path / IDENTITY).mkdir(mode=0o700)
    os.chown(tmp_path / IDENTITY, 4242, 4242)
    scan = tmp_path / IDENTITY / "scan.pdf"
    scan.write_bytes(b"owned by the station")
    os.chown(scan, 4242, 4242)
    spool = Spool(SpoolConfig(root=tmp_path, workers=1))

    assert read_input(spool, "scan.pdf") == b"owned by the station"


def write_output(spool: Spool, path: str, data: bytes, *, replace: bool = False, commit: bool = True) -> None:
    with spool.create_output(IDENTITY, path, "envelope_path", replace=replace) as output:
        os.write(output.fd, data)
        if commit:
            output.commit()


def temporary_files(spool: Spool) -> list[str]:
    return [name for name in os.listdir(folder(spool)) if name.startswith(".niemphong-")]


def test_create_output_commit_writes_file(spool: Spool) -> None:
    write_output(spool, "scan.pdf.npe", b"envelope")

    target = folder(spool) / "scan.pdf.npe"
    assert target.read_bytes() == b"envelope"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert temporary_files(spool) == []


def test_create_output_without_commit_leaves_nothing(spool: Spool) -> None:
    write_output(spool, "scan.pdf.npe", b"partial", commit=False)

    assert not (folder(spool) / "scan.pdf.npe").exists()
    assert temporary_files(spool) == []


def test_create_output_failure_leaves_nothing(spool: Spool) -> None:
    with pytest.raises(RuntimeError):
        with spool.create_output(IDENTITY, "scan.pdf.npe", "envelope_path", replace=False) as output:
            os.write(output.fd, b"partial")
            raise RuntimeError("seal failed")

    assert os.listdir(folder(spool)) == []


def test_create_output_existing_rejected(spool: Spool) -> None:
    (folder(spool) / "scan.pdf.npe").write_bytes(b"old")

    error = spool_error(write_output, spool, "scan.pdf.npe", b"new")

    assert error.reason == "SPOOL_OUTPUT_EXISTS"
    assert (folder(spool) / "scan.pdf.npe").read_bytes() == b"old"


def test_create_output_appearing_meanwhile_kept(spool: Spool) -> None:
    with pytest.raises(SpoolError) as excinfo:
        with spool.create_output(IDENTITY, "scan.pdf.npe", "envelope_path", replace=False) as output:
            os.write(output.fd, b"new")
            (folder(spool) / "scan.pdf.npe").write_bytes(b"other")
            output.commit()

    assert excinfo.value.reason == "SPOOL_OUTPUT_EXISTS"
    assert (folder(spool) / "scan.pdf.npe").read_bytes() == b"other"
    assert temporary_files(spool) == []


def test_create_output_replace_overwrites(spool: Spool) -> None:
    (folder(spool) / "scan.pdf.npe").write_bytes(b"old")

    write_output(spool, "scan.pdf.npe", b"new", replace=True)

    assert (folder(spool) / "scan.pdf.npe").read_bytes() == b"new"


def test_create_output_replace_symlink_keeps_target(spool: Spool, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (folder(spool) / "scan.pdf.npe").symlink_to(victim)

    write_output(spool, "scan.pdf.npe", b"new", replace=True)

    assert victim.read_bytes() == b"keep me"
    assert not (folder(spool) / "scan.pdf.npe").is_symlink()


def test_create_output_folder_rejected(spool: Spool) -> None:
    (folder(spool) / "scan.pdf.npe").mkdir()

    assert spool_error(write_output, spool, "scan.pdf.npe", b"x", replace=True).reason == "SPOOL_PATH_INVALID"


def test_create_output_same_as_input_rejected(spool: Spool) -> None:
    (folder(spool) / "scan.pdf").write_bytes(b"plaintext")

    with spool.open_input(IDENTITY, "scan.pdf", "source_path") as source:
        with pytest.raises(SpoolError) as excinfo:
            with spool.create_output(IDENTITY, "scan.pdf", "envelope_path", replace=True, not_same_as=source):
                pass

    assert excinfo.value.reason == "SPOOL_PATH_INVALID"
    assert (folder(spool) / "scan.pdf").read_bytes() == b"plaintext"


def test_input_changed_detected(spool: Spool) -> None:
    scan = folder(spool) / "scan.pdf"
    scan.write_bytes(b"first")

    with spool.open_input(IDENTITY, "scan.pdf", "source_path") as source:
        with scan.open("ab") as handle:
            handle.write(b" and more")
        with pytest.raises(SpoolError) as excinfo:
            source.check_unchanged("source_path")

    assert excinfo.value.problem == "changed"


def _spare_group() -> int:
    """Return a group id other than the process's own that this process may give a folder."""
    if os.geteuid() == 0:
        return 54_321
    groups = [gid for gid in os.getgroups() if gid != os.getegid()]
    if not groups:
        pytest.skip("needs root or a supplementary group")
    return groups[0]


def test_create_output_setgid_folder_group_inherited(spool: Spool) -> None:
    # The documented setup: a per-user spool folder, mode 2770, whose group
    # only the user and the daemon share, so the user can read opened files.
    group = _spare_group()
    os.chown(folder(spool), -1, group)
    folder(spool).chmod(0o2770)

    write_output(spool, "opened.pdf", b"plaintext")

    status = (folder(spool) / "opened.pdf").stat()
    assert status.st_gid == group
    assert stat.S_IMODE(status.st_mode) == 0o640
