"""Cost of one audit record, against a same-run baseline of a plain durable append.

Usage: .venv/bin/python bench/audit_append.py [RECORDS]

Makes a throwaway SoftHSM2 token with `niemphong dev init` in a temporary
folder, then appends RECORDS records (default 500) to an AuditLog with a
checkpoint every 100, 10 and 1 records. The baseline writes lines of the
same size to a file in the same folder with write(2) and fdatasync(2), which
is the least any durable record costs. The ratio shows what the hash chain,
the checks on the file and the checkpoints in the token add to that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from niemphong.daemon.audit.entries import canonical
from niemphong.daemon.audit.log import AuditLog
from niemphong.daemon.audit.token_key import TokenCheckpointKey
from niemphong.daemon.config import AuditSettings, load_config, read_pin
from niemphong.daemon.hsm import Pkcs11Token

CHECKPOINT_INTERVALS = (100, 10, 1)


def record(number: int) -> dict[str, object]:
    return {
        "request_id": f"{number:016x}",
        "identity": "scanner",
        "roles": ["scanner"],
        "operation": "EnvelopeService/Seal",
        "decision": "allowed",
        "status": "OK",
        "reason": "",
        "facts": {"artefact_id": "ab" * 16, "level": "mat", "plaintext_bytes": 150_000, "envelope_bytes": 150_400},
    }


def baseline_seconds(folder: Path, count: int, line_bytes: int) -> float:
    """Return the seconds per durable append of a ``line_bytes`` line with write(2) and fdatasync(2)."""
    line = b"x" * (line_bytes - 1) + b"\n"
    descriptor = os.open(folder / "baseline.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(descriptor, line)
            os.fdatasync(descriptor)
        return (time.perf_counter() - start) / count
    finally:
        os.close(descriptor)


def audit_seconds(folder: Path, key: TokenCheckpointKey, count: int, every: int) -> float:
    """Return the seconds per record of an AuditLog with a checkpoint every ``every`` records."""
    audit_log = AuditLog(AuditSettings(folder / f"audit-{every}.jsonl", every, 3600), key)
    audit_log.open()
    try:
        start = time.perf_counter()
        for number in range(count):
            audit_log.append(record(number))
        return (time.perf_counter() - start) / count
    finally:
        audit_log.close()


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    niemphong = Path(sys.executable).parent / "niemphong"
    with tempfile.TemporaryDirectory(prefix="niemphong-bench-") as name:
        folder = Path(name)
        subprocess.run([str(niemphong), "dev", "init", str(folder / "dev")], check=True, capture_output=True)
        config = load_config(folder / "dev" / "niemphongd.toml")
        token = Pkcs11Token(config.token, read_pin(config.token))
        try:
            key = TokenCheckpointKey(token)
            # About the size of a stored record with its chain fields.
            line_bytes = len(canonical(record(0))) + 200
            baseline = baseline_seconds(folder, count, line_bytes)
            print(f"baseline write+fdatasync of {line_bytes} bytes: {baseline * 1000:.2f} ms")
            for every in CHECKPOINT_INTERVALS:
                seconds = audit_seconds(folder, key, count, every)
                print(
                    f"audit record, checkpoint every {every:>3}: {seconds * 1000:.2f} ms "
                    f"({seconds / baseline:.2f} x baseline, {1 / seconds:.0f} records/s)"
                )
        finally:
            token.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
