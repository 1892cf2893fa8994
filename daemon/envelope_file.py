"""Seal and open whole files by descriptor, on several threads.

The body's segments are independent once the keys are known: segment ``i``
lives at a fixed offset and its nonce depends only on ``i``. A file whose
length is known up front can therefore be cut into blocks of segments that
worker threads read with pread, seal or open, and write with pwrite, while
AES-GCM runs outside the GIL. The bytes written are the same as those of
:class:`~niemphong.daemon.envelope.Sealer` and docs/format.md.

At most ``2 * workers`` blocks are in flight, so memory stays near
``4 * workers * BLOCK_BYTES`` whatever the file's size.
"""

from __future__ import annotations

import hashlib
import queue
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
import os

from niemphong.daemon import envelope

# About 4 MiB of plaintext per block: large enough that per-block overhead is
# small, small enough that a few blocks in flight stay far below the memory
# budget.
BLOCK_BYTES = 4 * 1024 * 1024


class SourceChanged(Exception):
    """The file being sealed became shorter while it was read."""


@dataclass(frozen=True)
class _Block:
    """A finished block: its buffer pair and the output bytes in it."""

    pair: tuple[bytearray, bytearray]
    data: memoryview


@dataclass(frozen=True)
class FileResult:
    plaintext_bytes: int
    envelope_bytes: int
    envelope_sha256: str


def _segments_per_block(segment_size: int) -> int:
    return max(1, BLOCK_BYTES // segment_size)


class _Buffers:
    """Reusable input and output buffers, one pair per block in flight.

    Allocating fresh 4 MiB buffers for every block costs page faults and
    zero-filling that are a large part of sealing a file from the page cache.
    """

    def __init__(self, count: int, input_bytes: int, output_bytes: int) -> None:
        self._free: queue.SimpleQueue[tuple[bytearray, bytearray]] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put((bytearray(input_bytes), bytearray(output_bytes)))

    def take(self) -> tuple[bytearray, bytearray]:
        # A pair is always free: at most ``count`` blocks are in flight, and
        # each gives its pair back before the next block is submitted.
        return self._free.get_nowait()

    def give_back(self, pair: tuple[bytearray, bytearray]) -> None:
        self._free.put(pair)


def _pread_into(fd: int, buffer: memoryview, offset: int) -> int:
    """Fill ``buffer`` from ``fd`` at ``offset``; return the bytes read, fewer only at end of file."""
    filled = 0
    while filled < len(buffer):
        count = os.preadv(fd, [buffer[filled:]], offset + filled)
        if count == 0:
            break
        filled += count
    return filled


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _run_window(executor: Executor, tasks: list[Callable[[], _Block]], workers: int,
                consume: Callable[[_Block], None]) -> None:
    """Run ``tasks`` on the executor, at most ``2 * workers`` at a time, consuming results in order.

    On the first failure the tasks not yet started are cancelled, the running
    ones are waited for, and the exception propagates.
    """
    pending: deque[Future[_Block]] = deque()
    next_task = 0
    try:
        while next_task < len(tasks) or pending:
            while next_task < len(tasks) and len(pending) < 2 * workers:
                pending.append(executor.submit(tasks[next_task]))
                next_task += 1
            consume(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                future.exception()


def seal_file(sealer: envelope.Sealer, source_fd: int, size: int, target_fd: int, *,
              executor: Executor, workers: int) -> FileResult:
    """Write the envelope of the first ``size`` bytes of ``source_fd`` to ``target_fd`` from offset 0.

    Raises:
        SourceChanged: the source returned fewer than ``size`` bytes.
    """
    header = sealer.header_bytes
    cipher = sealer.take_segment_cipher()
    if not cipher.shareable:
        workers = 1
    segment_size = cipher.segment_size
    segment_count = max(1, -(-size // segment_size))
    per_block = _segments_per_block(segment_size)
    sealed_len = segment_size + envelope.TAG_LEN

    buffers = _Buffers(2 * workers, per_block * segment_size, per_block * sealed_len)

    def seal_block(first: int) -> _Block:
        last_index = min(first + per_block, segment_count)
        start = first * segment_size
        length = min(size, last_index * segment_size) - start
        out_length = length + envelope.TAG_LEN * (last_index - first)
        pair = buffers.take()
        try:
            view = memoryview(pair[0])[:length]
            if _pread_into(source_fd, view, start) != length:
                raise SourceChanged()
            out_view = memoryview(pair[1])[:out_length]
            position = 0
            for index in range(first, last_index):
                chunk = view[(index - first) * segment_size:(index - first + 1) * segment_size]
                end = position + len(chunk) + envelope.TAG_LEN
                cipher.seal_into(index, chunk, out_view[position:end], last=index == segment_count - 1)
                position = end
            _pwrite_all(target_fd, out_view, len(header) + first * sealed_len)
        except BaseException:
            buffers.give_back(pair)
            raise
        return _Block(pair, out_view)

    def hash_block(block: _Block) -> None:
        digest.update(block.data)
        buffers.give_back(block.pair)

    digest = hashlib.sha256(header)
    _pwrite_all(target_fd, header, 0)
    tasks = [lambda first=first: seal_block(first) for first in range(0, segment_count, per_block)]
    # SHA-256 is sequential, so the handler thread hashes the blocks in order
    # while the workers seal the next ones.
    _run_window(executor, tasks, workers, hash_block)

    envelope_bytes = len(header) + size + envelope.TAG_LEN * segment_count
    return FileResult(size, envelope_bytes, digest.hexdigest())


def open_file(opener: envelope.Opener, source_fd: int, envelope_size: int, target_fd: int, *,
              executor: Executor, workers: int) -> int:
    """Write the plaintext of the envelope in ``source_fd`` to ``target_fd``; return its length.

    Every segment is verified before this returns, but the target holds the
    plaintext of verified segments even when a later one fails: the caller
    must discard it on IntegrityError.

    Raises:
        IntegrityError: the body length is invalid or a segment fails to verify.
    """
    header_len = opener.header.header_len
    segment_size = opener.header.segment_size
    plaintext_bytes = envelope.plaintext_length(envelope_size, header_len, segment_size)
    if plaintext_bytes is None:
        raise envelope.IntegrityError()
    cipher = opener.take_segment_cipher()
    if not cipher.shareable:
        workers = 1
    segment_count = max(1, -(-plaintext_bytes // segment_size))
    per_block = _segments_per_block(segment_size)
    sealed_len = segment_size + envelope.TAG_LEN

    buffers = _Buffers(2 * workers, per_block * sealed_len, per_block * segment_size)

    def open_block(first: int) -> _Block:
        last_index = min(first + per_block, segment_count)
        plain_start = first * segment_size
        plain_length = min(plaintext_bytes, last_index * segment_size) - plain_start
        length = plain_length + envelope.TAG_LEN * (last_index - first)
        pair = buffers.take()
        try:
            view = memoryview(pair[0])[:length]
            if _pread_into(source_fd, view, header_len + first * sealed_len) != length:
                raise envelope.IntegrityError()
            out_view = memoryview(pair[1])[:plain_length]
            position = 0
            for index in range(first, last_index):
                segment = view[(index - first) * sealed_len:(index - first + 1) * sealed_len]
                end = position + len(segment) - envelope.TAG_LEN
                cipher.open_into(index, segment, out_view[position:end], last=index == segment_count - 1)
                position = end
            _pwrite_all(target_fd, out_view, plain_start)
        except BaseException:
            buffers.give_back(pair)
            raise
        return _Block(pair, out_view)

    def release_block(block: _Block) -> None:
        buffers.give_back(block.pair)

    tasks = [lambda first=first: open_block(first) for first in range(0, segment_count, per_block)]
    _run_window(executor, tasks, workers, release_block)
    return plaintext_bytes
