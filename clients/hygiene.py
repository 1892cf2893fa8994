"""Removing a scan once its envelope is known to open to exactly that scan.

The daemon decrypts the new envelope (EnvelopeService/Verify) and returns
only the SHA-256 of the plaintext; the source is removed only when that
digest equals the digest of the bytes that were sealed, and the file still
has that digest when it is removed.

What removal guarantees: the file's name is gone and, on a disk that
rewrites blocks in place (a hard disk with ext4 or XFS without snapshots),
its blocks are overwritten once with zeros before the name is removed. What
it does not: SSDs and flash media remap writes to fresh cells (wear
levelling), so the old cells keep the data until the drive erases them, and
copy-on-write file systems (Btrfs, ZFS), snapshots, backups, swap and
editors' temporary copies may keep other copies. Only encrypting the whole
disk from the start, or destroying the medium, removes every copy; see
docs/plaintext.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from niemphong.clients.connection import CHUNK_BYTES, UNARY_TIMEOUT_SECONDS
from niemphong.clients.console import Console
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.context import open_input_file
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_ZEROS = bytes(CHUNK_BYTES)


def verify_envelope(stub: pb_grpc.EnvelopeServiceStub, envelope: Path, server: str) -> pb.VerifyResponse:
    """Ask the daemon to decrypt ``envelope`` and return the plaintext's size and SHA-256."""
    envelope_file, _ = open_input_file(envelope)

    def requests():  # type: ignore[no-untyped-def]
        while chunk := envelope_file.read(CHUNK_BYTES):
            yield pb.VerifyRequest(chunk=chunk)

    with envelope_file, rpc_errors_as_client_errors(server):
        # Decrypting a large scan takes longer than a unary call's usual deadline.
        return stub.Verify(requests(), timeout=UNARY_TIMEOUT_SECONDS * 20)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def remove_file(path: Path, expected_sha256: str) -> None:
    """Overwrite ``path`` once with zeros and unlink it, if it still has ``expected_sha256``.

    Raises ClientError and leaves the file when its content changed since it
    was sealed or when another hard link would keep it.
    """
    status = path.stat()
    if status.st_nlink > 1:
        raise ClientError(ExitCode.FAILURE, "hygiene.hard_links", path=str(path), links=status.st_nlink)
    if _file_sha256(path) != expected_sha256:
        raise ClientError(ExitCode.INTEGRITY_FAILURE, "hygiene.source_changed", path=str(path))

    with path.open("r+b") as handle:
        remaining = status.st_size
        while remaining > 0:
            remaining -= handle.write(_ZEROS[: min(remaining, len(_ZEROS))])
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
    folder = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def verify_and_remove(
    stub: pb_grpc.EnvelopeServiceStub, envelope: Path, source: Path, source_sha256: str, server: str, console: Console
) -> None:
    """Remove ``source`` once the daemon confirms that ``envelope`` opens to the same bytes."""
    response = verify_envelope(stub, envelope, server)
    if response.plaintext_sha256 != source_sha256:
        raise ClientError(ExitCode.INTEGRITY_FAILURE, "hygiene.verify_mismatch", envelope=str(envelope))

    remove_file(source, source_sha256)
    log.info("removed source %s after verifying artefact %s", source, response.artefact_id)
    console.say("hygiene.removed", source=str(source), envelope=str(envelope))
