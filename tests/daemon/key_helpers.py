"""Helpers for the key lifecycle and recovery tests: a dev environment with its
own daemon, sealing into files, opening with fresh grants, and reading headers.

These tests change key versions and tokens, so they never use the session's
shared daemon. Test modules import from here by name, as the client tests
import fake_niemphongd.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import BIN, DaemonProcess, DevEnvironment, dev_init, grant_access, open_bytes, seal_bytes
from niemphong.daemon import envelope
from niemphong.v1 import niemphong_pb2 as pb

MIB = 1024 * 1024
APPROVERS = {pb.LEVEL_MAT: ["approver-1"], pb.LEVEL_TOI_MAT: ["approver-1", "approver-2"]}


@dataclass
class KeyLab:
    """A dev environment with a second custodian and its own daemon."""

    env: DevEnvironment
    daemon: DaemonProcess

    def cli(self, identity: str, *args: str, lang: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.env.cli(identity, *args, lang=lang)


def cli_environ(env: DevEnvironment, identity: str) -> dict[str, str]:
    """Return the environment `DevEnvironment.cli` runs niemphong with, for running it another way."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("NIEMPHONG_")}
    environ.setdefault("LANG", "vi_VN.UTF-8")
    environ.update(NIEMPHONG_SERVER=env.unix_target, NIEMPHONG_IDENTITY=str(env.identity(identity)))
    return environ


def make_lab(root: Path, log: Path) -> KeyLab:
    """Create a dev environment under ``root`` with a second custodian, custodian-2; do not start its daemon."""
    env = dev_init(root)
    env.add_identity("custodian-2", "custodian")
    return KeyLab(env, DaemonProcess(env, log))


def sample(size: int) -> bytes:
    block = b"BMNN-KEY-LIFECYCLE:" + os.urandom(45)
    return (block * (size // len(block) + 1))[:size]


def seal_file(lab: KeyLab, path: Path, data: bytes, level: int) -> pb.SealSummary:
    sealed, summary = seal_bytes(lab.env, data, level=level, doc_number=f"{path.stem}/UBND")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sealed)
    return summary


def open_file(lab: KeyLab, path: Path, artefact_id: str, level: int) -> bytes:
    """Open an envelope file under a fresh grant: Tối mật grants allow one open only."""
    request_id = grant_access(lab.env, artefact_id, APPROVERS[level])
    return open_bytes(lab.env, path.read_bytes(), request_id=request_id)


def header_length(data: bytes) -> int:
    return envelope.read_header_length(data[: envelope.PREAMBLE_LEN])


def body(path: Path) -> bytes:
    data = path.read_bytes()
    return data[header_length(data):]


def slots(path: Path) -> list[tuple[str, int, str]]:
    header = envelope.parse_header(path.read_bytes())
    return [(slot.key_id, slot.key_version, slot.wrap_algorithm) for slot in header.slots]


def part_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob(".niemphong-*.part"))


def run_niemphongd(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "niemphongd"), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
