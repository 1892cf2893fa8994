"""The baseline server: bare gRPC echo over the same unix socket, mTLS and message limits as niemphongd.

    python -m bench.echo_server --socket PATH --ca CA --cert CERT --key KEY [--workers 32]

``/niemphong.bench.Echo/Stream`` answers every SealRequest chunk with a
SealResponse holding the same bytes, as Seal answers a chunk with its
envelope bytes; ``Unary`` answers one SealRequest with one SealResponse. Same
protobuf messages, same thread pool size, no interceptor, no token, no state.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from niemphong.v1 import niemphong_pb2 as pb

SERVICE = "niemphong.bench.Echo"
MESSAGE_OVERHEAD_BYTES = 64 * 1024


def _stream(requests: Iterator[pb.SealRequest], context: grpc.ServicerContext) -> Iterator[pb.SealResponse]:
    for request in requests:
        if request.WhichOneof("payload") == "chunk":
            yield pb.SealResponse(chunk=request.chunk)


def _unary(request: pb.SealRequest, context: grpc.ServicerContext) -> pb.SealResponse:
    return pb.SealResponse(chunk=request.chunk)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.echo_server", description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--chunk-bytes", type=int, default=1024 * 1024)
    options = parser.parse_args()

    limit = options.chunk_bytes + MESSAGE_OVERHEAD_BYTES
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.workers),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    handlers = {
        "Stream": grpc.stream_stream_rpc_method_handler(
            _stream, request_deserializer=pb.SealRequest.FromString,
            response_serializer=pb.SealResponse.SerializeToString,
        ),
        "Unary": grpc.unary_unary_rpc_method_handler(
            _unary, request_deserializer=pb.SealRequest.FromString,
            response_serializer=pb.SealResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    credentials = grpc.ssl_server_credentials(
        [(open(options.key, "rb").read(), open(options.cert, "rb").read())],
        root_certificates=open(options.ca, "rb").read(),
        require_client_auth=True,
    )
    if os.path.exists(options.socket):
        os.unlink(options.socket)
    server.add_secure_port(f"unix:{options.socket}", credentials)
    server.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
