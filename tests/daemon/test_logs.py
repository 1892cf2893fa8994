"""Daemon logging: journald fields, the request id on every line of a call."""

from __future__ import annotations

import io
import logging
import socket
import struct
from pathlib import Path

import grpc

from conftest import DaemonProcess, DevEnvironment
from niemphong.daemon.logs import (
    JournalHandler,
    RequestIdFilter,
    TEXT_FORMAT,
    journal_field_bytes,
    priority,
    request_id_var,
    stderr_is_journal,
)
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc


def parse_journal_datagram(data: bytes) -> dict[str, str]:
    """Decode journald's native protocol, both the simple and the binary field form."""
    fields = {}
    while data:
        line_end = data.index(b"\n")
        line = data[:line_end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            data = data[line_end + 1:]
        else:
            name = line
            (length,) = struct.unpack("<Q", data[line_end + 1:line_end + 9])
            value = data[line_end + 9:line_end + 9 + length]
            data = data[line_end + 10 + length:]
        fields[name.decode()] = value.decode()
    return fields


def test_journal_field_plain_value() -> None:
    assert journal_field_bytes("MESSAGE", "sealed artefact") == b"MESSAGE=sealed artefact\n"


def test_journal_field_multiline_value_length_prefixed() -> None:
    encoded = journal_field_bytes("MESSAGE", "line one\nline two")

    assert encoded == b"MESSAGE\n" + struct.pack("<Q", 17) + b"line one\nline two\n"


def test_priority_from_level() -> None:
    assert [priority(level) for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)] == [7, 6, 4, 3]


def test_journal_handler_sends_fields_with_request_id(tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    logger = logging.getLogger("niemphong.test.journal")
    handler = JournalHandler(str(path))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("a1b2c3d4e5f60718")
    try:
        logger.warning("request refused:\n%s", "second line")
        fields = parse_journal_datagram(receiver.recv(65536))
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
        handler.close()
        receiver.close()

    assert fields["MESSAGE"] == "request refused:\nsecond line"
    assert fields["PRIORITY"] == "4"
    assert fields["REQUEST_ID"] == "a1b2c3d4e5f60718"
    assert fields["LOGGER"] == "niemphong.test.journal"
    assert fields["SYSLOG_IDENTIFIER"] == "niemphongd"
    assert fields["CODE_FUNC"] == "test_journal_handler_sends_fields_with_request_id"


def test_journal_handler_socket_missing_falls_back_to_stderr(tmp_path: Path) -> None:
    fallback = io.StringIO()
    handler = JournalHandler(str(tmp_path / "absent.sock"), fallback=fallback)
    handler.addFilter(RequestIdFilter())
    record = logging.LogRecord("niemphong.test", logging.ERROR, __file__, 1, "token gone", (), None)

    handler.handle(record)
    handler.close()

    assert fallback.getvalue() == "<3>[-] token gone\n"


def test_stderr_is_journal_needs_matching_inode() -> None:
    assert not stderr_is_journal({"JOURNAL_STREAM": "8:12345"})
    assert not stderr_is_journal({"JOURNAL_STREAM": "not-a-stream"})
    assert not stderr_is_journal({})


def test_text_format_has_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    record = logging.LogRecord("niemphong.test", logging.INFO, __file__, 1, "opened", (), None)

    handler.handle(record)

    assert "INFO niemphong.test [-] opened" in stream.getvalue()


def test_daemon_log_lines_carry_request_id(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    with dev_env.channel("viewer") as channel:
        with_call = pb_grpc.AccessServiceStub(channel).RequestAccess.with_call
        try:
            with_call(pb.RequestAccessRequest(artefact_id="0" * 32, purpose="kiểm tra"), timeout=10)
        except grpc.RpcError as error:
            trailers = dict(error.trailing_metadata() or ())
        else:
            raise AssertionError("a request for an unknown artefact succeeded")
    request_id = trailers["x-request-id"]

    lines = [line for line in daemon.log().splitlines() if request_id in line]

    assert lines
    assert all(f"[{request_id}]" in line for line in lines)
    assert any("ARTEFACT_NOT_FOUND" in line for line in lines)
