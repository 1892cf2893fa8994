"""Compare in-token mode with host mode on a throwaway SoftHSM2 token.

    .venv/bin/python bench/in_token_mode.py [--mib 32] [--rounds 3] [--json]

Seals and opens the same random plaintext with both modes, through the
daemon's own code (Pkcs11Token and envelope.Sealer/Opener, no gRPC), and
prints throughput for each and the ratio of in-token to host time. Host
mode is the same-run baseline: only the ratio is meant to carry over to
other machines. The token is a new SoftHSM2 token made by `niemphong dev
init` in a temporary folder, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from niemphong.daemon import envelope
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.hsm import Pkcs11Token

KEY_ID = "niemphong-mat"
CHUNK_BYTES = 1024 * 1024
METADATA = {"doc_number": "1/BENCH", "issued_on": "2025-01-02"}


def seal(token: Pkcs11Token, plaintext: bytes, in_token: bool) -> bytes:
    if in_token:
        data_key, slot = token.new_in_token_data_key(KEY_ID, 1)
    else:
        data_key, slot = token.new_data_key(KEY_ID, 1)
    try:
        sealer = envelope.Sealer(
            data_key, artefact_id=os.urandom(16), level=envelope.LEVEL_MAT, metadata=METADATA, slots=[slot],
            sealed_at=int(time.time()),
        )
        # Chunks of the daemon's default gRPC message size, as Seal receives them.
        parts = [sealer.header_bytes]
        for start in range(0, len(plaintext), CHUNK_BYTES):
            parts.append(sealer.update(plaintext[start:start + CHUNK_BYTES]))
        parts.append(sealer.finalize())
        return b"".join(parts)
    finally:
        if in_token:
            data_key.close()


def open_envelope(token: Pkcs11Token, sealed: bytes) -> bytes:
    header = envelope.parse_header(sealed)
    in_token = header.aead == envelope.AEAD_TOKEN_AES256GCM
    data_key = token.unwrap_in_token_data_key(header.slots[0]) if in_token else token.unwrap_data_key(header.slots[0])
    try:
        opener = envelope.Opener(header, data_key)
        parts = []
        for start in range(header.header_len, len(sealed), CHUNK_BYTES):
            parts.append(opener.update(sealed[start:start + CHUNK_BYTES]))
        parts.append(opener.finalize())
        return b"".join(parts)
    finally:
        if in_token:
            data_key.close()


def measure(token: Pkcs11Token, plaintext: bytes, in_token: bool, rounds: int) -> dict[str, float]:
    seal_times, open_times = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        sealed = seal(token, plaintext, in_token)
        seal_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        opened = open_envelope(token, sealed)
        open_times.append(time.perf_counter() - started)
        if opened != plaintext:
            raise SystemExit("bench: round trip returned other bytes")
    mib = len(plaintext) / 2**20
    return {
        "seal_seconds": statistics.median(seal_times),
        "open_seconds": statistics.median(open_times),
        "seal_mib_per_second": mib / statistics.median(seal_times),
        "open_mib_per_second": mib / statistics.median(open_times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Compare in-token mode with host mode on SoftHSM2.")
    parser.add_argument("--mib", type=int, default=32, help="plaintext size in MiB (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode; the median is reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="np-bench-") as folder:
        root = Path(folder) / "env"
        niemphong = Path(sys.executable).parent / "niemphong"
        subprocess.run([str(niemphong), "dev", "init", str(root)], check=True, capture_output=True, timeout=300)
        config = load_config(root / "niemphongd.toml")
        token = Pkcs11Token(config.token, read_pin(config.token))
        try:
            plaintext = os.urandom(options.mib * 2**20)
            host = measure(token, plaintext, in_token=False, rounds=options.rounds)
            in_token = measure(token, plaintext, in_token=True, rounds=options.rounds)
        finally:
            token.close()

    result = {
        "plaintext_mib": options.mib,
        "segment_bytes": envelope.DEFAULT_SEGMENT_SIZE,
        "rounds": options.rounds,
        "host": host,
        "in_token": in_token,
        "seal_time_ratio": in_token["seal_seconds"] / host["seal_seconds"],
        "open_time_ratio": in_token["open_seconds"] / host["open_seconds"],
    }
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{options.mib} MiB, {envelope.DEFAULT_SEGMENT_SIZE // 1024} KiB segments, median of {options.rounds}")
        for name, numbers in (("host", host), ("in-token", in_token)):
            print(f"  {name:9} seal {numbers['seal_mib_per_second']:8.1f} MiB/s   open {numbers['open_mib_per_second']:8.1f} MiB/s")
        print(f"  in-token / host time: seal x{result['seal_time_ratio']:.2f}, open x{result['open_time_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
