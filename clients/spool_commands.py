"""``scan --spool`` and ``view --spool``: the daemon reads and writes the files itself.

For a client on the daemon's host. The user names files by their ordinary
paths; the client turns them into paths relative to the identity's spool
directory (``--spool DIR``), which is all the daemon accepts. The daemon
checks every path again and is the authority; the client's checks only give
a clearer message sooner.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from niemphong.clients.context import CommandContext
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import format_bytes, format_count
from niemphong.clients.render import open_summary_json
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def spool_relative(path: Path, spool: Path) -> str:
    """Return ``path`` relative to the spool directory, with ``/`` between components.

    The folder holding ``path`` is resolved, symbolic links included, but the
    last component is not, so that the daemon sees and rejects a link there.
    Raises ClientError (usage) when the spool directory is missing or
    ``path`` is outside it.
    """
    root = Path(os.path.realpath(spool))
    if not root.is_dir():
        raise ClientError(ExitCode.USAGE, "usage.spool_missing", spool=str(spool))

    absolute = Path(os.path.abspath(path))
    resolved = Path(os.path.realpath(absolute.parent)) / absolute.name
    try:
        relative = resolved.relative_to(root)
    except ValueError:
        raise ClientError(ExitCode.USAGE, "usage.spool_outside", path=str(path), spool=str(spool)) from None
    if not relative.parts:
        raise ClientError(ExitCode.USAGE, "usage.spool_outside", path=str(path), spool=str(spool))
    return "/".join(relative.parts)


def seal_in_spool(args: argparse.Namespace, context: CommandContext, metadata: pb.SealMetadata) -> pb.SealFileResponse:
    """Ask the daemon to seal ``args.file`` into ``args.out``, both inside ``args.spool``, and return its response."""
    spool = Path(args.spool)
    source, out = Path(args.file), Path(args.out)
    request = pb.SealFileRequest(
        metadata=metadata,
        source_path=spool_relative(source, spool),
        envelope_path=spool_relative(out, spool),
        replace=args.force,
    )

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        # No deadline, as for the Seal stream: the time grows with the file's size.
        response = pb_grpc.SpoolServiceStub(channel).SealFile(request)

    if response.WhichOneof("result") == "summary":
        summary = response.summary
        log.info(
            "sealed in spool artefact_id=%s level=%s plaintext_bytes=%d envelope_bytes=%d",
            summary.artefact_id, summary.level, summary.plaintext_bytes, summary.envelope_bytes,
        )
    elif response.WhichOneof("result") != "not_sealed":
        raise ClientError(ExitCode.FAILURE, "error.bad_stream")
    return response


def run_view_spool(args: argparse.Namespace, context: CommandContext) -> int:
    """Ask the daemon to open ``args.envelope`` into ``args.out``, both inside ``args.spool``."""
    console = context.console
    spool = Path(args.spool)
    out = Path(args.out)
    request = pb.OpenFileRequest(
        request_id=args.request or "",
        envelope_path=spool_relative(Path(args.envelope), spool),
        output_path=spool_relative(out, spool),
        replace=args.force,
    )

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        summary = pb_grpc.SpoolServiceStub(channel).OpenFile(request)

    log.info(
        "opened in spool artefact_id=%s plaintext_bytes=%d opens_remaining=%d",
        summary.artefact_id, summary.plaintext_bytes, summary.opens_remaining,
    )
    console.say(
        "view.done",
        size=format_bytes(summary.plaintext_bytes, console.lang),
        out=str(out),
        opens=format_count(summary.opens_remaining, console.lang),
    )
    console.say("view.reminder")
    if args.json:
        console.json(open_summary_json(summary, out))
    return ExitCode.OK

