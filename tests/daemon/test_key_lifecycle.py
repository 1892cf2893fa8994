"""Key versions end to end: rotate, seal under the new version, rewrap an
archive (interrupted and resumed), retire and destroy the old version, and
every envelope still opens with its body unchanged. Real daemon, real token,
the niemphong command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from conftest import error_reason, grant_access, open_bytes
from key_helpers import MIB, KeyLab, body, cli_environ, make_lab, open_file, part_files, sample, seal_file, slots
from niemphong.daemon import envelope
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

MAT, TOI_MAT = pb.LEVEL_MAT, pb.LEVEL_TOI_MAT

# Runs `niemphong rewrap` and kills the process, as SIGKILL or a power cut
# would, once `limit` body bytes of the files being rewritten were copied.
CRASH_SCRIPT = """
import os, sys
from niemphong.clients import progress
from niemphong.clients.cli import main

limit = int(sys.argv[1])
copied = 0
advance = progress.ProgressBar.advance

def advance_then_crash(self, byte_count):
    global copied
    advance(self, byte_count)
    copied += byte_count
    if copied >= limit:
        os._exit(137)

progress.ProgressBar.advance = advance_then_crash
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyLab]:
    lab = make_lab(tmp_path_factory.mktemp("lifecycle"), tmp_path_factory.mktemp("logs") / "niemphongd.log")
    lab.daemon.start()
    yield lab
    assert lab.daemon.stop() == 0, lab.daemon.log()


def keys_by_version(lab: KeyLab) -> dict[tuple[str, int], dict[str, object]]:
    result = lab.cli("auditor", "keys", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {(key["key_id"], key["version"]): key for key in json.loads(result.stdout)["keys"]}


def confirm_as_second_custodian(lab: KeyLab, proposed: subprocess.CompletedProcess[str]) -> None:
    assert proposed.returncode == 0, proposed.stderr
    change_id = proposed.stdout.strip()
    confirmed = lab.cli("custodian-2", "keys", "confirm", change_id)
    assert confirmed.returncode == 0, confirmed.stderr


def test_rotate_rewrap_retire_destroy_keeps_archive_open(lab: KeyLab, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    documents: dict[Path, tuple[bytes, str, int]] = {}

    def seal(relative: str, data: bytes, level: int) -> None:
        path = archive / relative
        documents[path] = (data, seal_file(lab, path, data, level).artefact_id, level)

    # Version 1 envelopes, one of several segments and 3 MiB.
    seal("2024/a-ke-hoach.npe", sample(3 * MIB + 123), MAT)
    seal("2024/b-bien-ban.npe", sample(70_000), TOI_MAT)
    seal("c-cong-van.npe", sample(1000), MAT)
    (archive / "ghi-chu.txt").write_text("không phải phong bì", encoding="utf-8")

    # Rotate: one custodian for Mật, two distinct custodians for Tối mật.
    rotated = lab.cli("custodian", "keys", "rotate", "--level", "mat")
    assert rotated.returncode == 0, rotated.stderr
    proposed = lab.cli("custodian", "keys", "rotate", "--level", "toi-mat")
    assert proposed.returncode == 0, proposed.stderr
    assert "1/2" in proposed.stderr
    again = lab.cli("custodian", "keys", "confirm", proposed.stdout.strip())
    assert again.returncode == 3
    assert keys_by_version(lab)[("niemphong-toi-mat", 1)]["state"] == "active"
    confirm_as_second_custodian(lab, proposed)

    registry = keys_by_version(lab)
    for key_id in ("niemphong-mat", "niemphong-toi-mat"):
        assert registry[(key_id, 1)]["state"] == "retired_sealing"
        assert registry[(key_id, 2)]["state"] == "active"
        assert registry[(key_id, 2)]["in_token"] is True

    # New seals use version 2; old and new envelopes open.
    seal("2025/d-quyet-dinh.npe", sample(200_000), MAT)
    seal("2025/e-to-trinh.npe", sample(5000), TOI_MAT)
    assert slots(archive / "2025/d-quyet-dinh.npe")[0][:2] == ("niemphong-mat", 2)
    assert slots(archive / "2024/a-ke-hoach.npe")[0][:2] == ("niemphong-mat", 1)
    for path, (data, artefact_id, level) in documents.items():
        assert open_file(lab, path, artefact_id, level) == data, path

    original = {path: path.read_bytes() for path in documents}
    bodies = {path: body(path) for path in documents}

    # Retired for opening, version 1 of Mật no longer opens, and it cannot be
    # destroyed while the registry records envelopes under it.
    retired = lab.cli("custodian", "keys", "retire", "--level", "mat", "--version", "1", "--for", "opening")
    assert retired.returncode == 0, retired.stderr
    old_path = archive / "c-cong-van.npe"
    request_id = grant_access(lab.env, documents[old_path][1], ["approver-1"])
    with pytest.raises(grpc.RpcError) as refused:
        open_bytes(lab.env, old_path.read_bytes(), request_id=request_id)
    assert error_reason(refused.value) == "KEY_RETIRED"
    too_early = lab.cli("custodian", "keys", "destroy", "--level", "mat", "--version", "1")
    assert too_early.returncode == 3
    assert "2 tài liệu" in too_early.stderr

    # Rewrap, killed half-way through copying the 3 MiB body. The small
    # envelope in the top folder comes first and is done by then.
    big = archive / "2024/a-ke-hoach.npe"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(int(1.5 * MIB)), "rewrap", str(archive)],
        env=cli_environ(lab.env, "custodian"), capture_output=True, text=True, timeout=120,
    )
    assert crashed.returncode == 137, crashed.stderr
    assert big.read_bytes() == original[big]
    leftovers = part_files(archive)
    assert len(leftovers) == 1
    assert MIB <= leftovers[0].stat().st_size < len(original[big])

    # Resumed: the whole archive moves to version 2, bodies untouched.
    resumed = lab.cli("custodian", "rewrap", str(archive), "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["leftovers_removed"] == 1
    assert report["rewrapped"] == 2
    assert report["current"] == 3
    assert report["skipped"] == 1
    assert report["failed"] == 0
    assert part_files(archive) == []
    for path in documents:
        assert [name[:2] for name in slots(path)] in ([("niemphong-mat", 2)], [("niemphong-toi-mat", 2)]), path
        assert body(path) == bodies[path], path
    assert big.read_bytes() != original[big]

    # A second run finds nothing to do.
    rerun = lab.cli("custodian", "rewrap", str(archive), "--json")
    assert json.loads(rerun.stdout)["rewrapped"] == 0

    # Retire and destroy version 1 of both levels.
    destroyed = lab.cli("custodian", "keys", "destroy", "--level", "mat", "--version", "1")
    assert destroyed.returncode == 0, destroyed.stderr
    confirm_as_second_custodian(
        lab, lab.cli("custodian", "keys", "retire", "--level", "toi-mat", "--version", "1", "--for", "opening"),
    )
    confirm_as_second_custodian(lab, lab.cli("custodian", "keys", "destroy", "--level", "toi-mat", "--version", "1"))
    registry = keys_by_version(lab)
    for key_id in ("niemphong-mat", "niemphong-toi-mat"):
        assert registry[(key_id, 1)]["state"] == "destroyed"
        assert registry[(key_id, 1)]["in_token"] is False
        assert registry[(key_id, 1)]["artefacts"] == 0

    # Everything still opens, byte for byte.
    for path, (data, artefact_id, level) in documents.items():
        assert open_file(lab, path, artefact_id, level) == data, path


def test_rewrap_counts_no_open(lab: KeyLab, tmp_path: Path) -> None:
    path = tmp_path / "f-thong-bao.npe"
    data = sample(10_000)
    summary = seal_file(lab, path, data, MAT)
    request_id = grant_access(lab.env, summary.artefact_id, ["approver-1"])
    rotated = lab.cli("custodian", "keys", "rotate", "--level", "mat")
    assert rotated.returncode == 0, rotated.stderr

    result = lab.cli("operator", "rewrap", str(path))

    assert result.returncode == 0, result.stderr
    with lab.env.channel("viewer") as channel:
        shown = pb_grpc.AccessServiceStub(channel).GetRequest(pb.GetRequestRequest(request_id=request_id))
    assert shown.grant.opens_used == 0
    assert open_bytes(lab.env, path.read_bytes(), request_id=request_id) == data


def test_rewrap_replaced_but_unrecorded_file_opens(lab: KeyLab, tmp_path: Path) -> None:
    # A rewrap that dies between replacing the file and showing the daemon the
    # new header leaves a file under the new version while the registry still
    # records the old one. The file must open anyway, even with the old
    # version retired for opening, and a later run records it.
    path = tmp_path / "g-bao-cao.npe"
    data = sample(70_000)
    summary = seal_file(lab, path, data, MAT)
    rotated = lab.cli("custodian", "keys", "rotate", "--level", "mat")
    assert rotated.returncode == 0, rotated.stderr
    old_version = slots(path)[0][1]
    with lab.env.channel("custodian") as channel:
        header_bytes = envelope.parse_header(path.read_bytes()).header_bytes
        response = kpb_grpc.KeyServiceStub(channel).Rewrap(kpb.RewrapRequest(header=header_bytes))
    assert response.changed
    assert not response.recorded
    path.write_bytes(response.header + body(path))
    retired = lab.cli("custodian", "keys", "retire", "--level", "mat", "--version", str(old_version), "--for", "opening")
    assert retired.returncode == 0, retired.stderr

    # Other tests' envelopes may share the old version, so compare counts.
    recorded_before = keys_by_version(lab)[("niemphong-mat", old_version)]["artefacts"]
    assert recorded_before >= 1
    assert open_file(lab, path, summary.artefact_id, MAT) == data

    resumed = lab.cli("custodian", "rewrap", str(path), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["current"] == 1
    assert keys_by_version(lab)[("niemphong-mat", old_version)]["artefacts"] == recorded_before - 1


def test_copy_left_out_of_rewrap_still_opens(tmp_path: Path) -> None:
    lab = make_lab(tmp_path / "lab", tmp_path / "niemphongd.log")
    lab.daemon.start()
    try:
        data = sample(50_000)
        original = tmp_path / "original" / "to-trinh.npe"
        artefact_id = seal_file(lab, original, data, MAT).artefact_id
        archive = tmp_path / "archive"
        archive.mkdir()
        (archive / "to-trinh.npe").write_bytes(original.read_bytes())

        rotated = lab.cli("custodian", "keys", "rotate", "--level", "mat")
        assert rotated.returncode == 0, rotated.stderr
        rewrapped = lab.cli("custodian", "rewrap", str(archive), "--json")
        assert rewrapped.returncode == 0, rewrapped.stderr
        assert slots(archive / "to-trinh.npe")[0][:2] == ("niemphong-mat", 2)

        # The copy the rewrap did not reach, a backup say, opens under version 1
        # while that version still opens, and a later rewrap moves it too.
        assert slots(original)[0][:2] == ("niemphong-mat", 1)
        assert open_file(lab, original, artefact_id, MAT) == data
        backup = tmp_path / "backup"
        backup.mkdir()
        (backup / "to-trinh.npe").write_bytes(original.read_bytes())
        moved = lab.cli("custodian", "rewrap", str(backup), "--json")
        assert moved.returncode == 0, moved.stderr
        assert slots(backup / "to-trinh.npe")[0][:2] == ("niemphong-mat", 2)

        # Retired for opening, version 1 is named as the cause, not tampering.
        retired = lab.cli("custodian", "keys", "retire", "--level", "mat", "--version", "1", "--for", "opening")
        assert retired.returncode == 0, retired.stderr
        request_id = grant_access(lab.env, artefact_id, ["approver-1"])
        with pytest.raises(grpc.RpcError) as refused:
            open_bytes(lab.env, original.read_bytes(), request_id=request_id)
        assert error_reason(refused.value) == "KEY_RETIRED"
    finally:
        assert lab.daemon.stop() == 0, lab.daemon.log()
