"""Shared state of client commands: the console, the environment and the channel to niemphongd."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import grpc

from niemphong.clients.connection import (
    DEFAULT_SERVER_NAME,
    Identity,
    ServerAddress,
    load_identity,
    open_channel,
    resolve_identity_folder,
    resolve_server,
)
from niemphong.clients.console import Console
from niemphong.clients.errors import ClientError, ExitCode, os_error_text, register_certificate_check
from niemphong.clients.protocol import starts_with_envelope_magic
from niemphong.clients.tls_check import client_certificate_rejected


@dataclass
class CommandContext:
    """The console and environment variables one command runs with."""

    console: Console
    environ: Mapping[str, str]
    # The identity that connect() loaded; None before the first connect().
    identity: Identity | None = field(default=None, init=False)

    def connect(self, args: argparse.Namespace) -> tuple[grpc.Channel, ServerAddress]:
        """Open the mTLS channel named by ``--server`` and ``--identity`` or their variables.

        Warns when the private key is readable by other users.
        """
        server = resolve_server(getattr(args, "server", None), self.environ)
        identity = load_identity(resolve_identity_folder(getattr(args, "identity", None), self.environ))
        if identity.key_mode & 0o077:
            key_path = identity.folder / "key.pem"
            self.console.warn("warning.key_permissions", path=str(key_path), mode=f"{identity.key_mode:04o}")
        self.identity = identity
        server_name = self.environ.get("NIEMPHONG_SERVER_NAME") or DEFAULT_SERVER_NAME
        register_certificate_check(
            server.display, lambda: client_certificate_rejected(server, identity, server_name),
        )
        return open_channel(server, identity, self.environ), server


def open_input_file(path: Path) -> tuple[BinaryIO, int]:
    """Open a regular file for reading and return it with its size in bytes.

    Raises ClientError (usage) when the file is missing, is not a regular
    file or cannot be read.
    """
    # Check before opening, because opening a FIFO would block until a writer appears.
    try:
        status = path.stat()
    except FileNotFoundError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_missing", path=str(path)) from exc
    except OSError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_unreadable", path=str(path), error=os_error_text(exc)) from exc
    if not stat.S_ISREG(status.st_mode):
        raise ClientError(ExitCode.USAGE, "usage.input_not_file", path=str(path))

    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_unreadable", path=str(path), error=os_error_text(exc)) from exc
    return handle, os.fstat(handle.fileno()).st_size


def open_envelope_file(path: Path) -> tuple[BinaryIO, int]:
    """Open an envelope for reading and return it with its size in bytes.

    Raises ClientError (usage) as open_input_file does, and ClientError
    (integrity failure) when the file does not start with the envelope
    magic, such as a CSV or a PDF given by mistake.
    """
    handle, size = open_input_file(path)
    try:
        is_envelope = starts_with_envelope_magic(handle)
    except OSError as exc:
        handle.close()
        raise ClientError(ExitCode.USAGE, "usage.input_unreadable", path=str(path), error=os_error_text(exc)) from exc
    if not is_envelope:
        handle.close()
        raise ClientError(ExitCode.INTEGRITY_FAILURE, "envelope.not_envelope", path=str(path))
    return handle, size
