"""Read a stream of request messages on a worker thread, a few messages ahead.

gRPC Python runs a streaming handler on one thread that alternates between
waiting for the next request message, working on it, and waiting until its
response message is sent. Reading on a second thread lets the next message
arrive while the handler seals the current one and sends the result, as a
bare echo server cannot.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

# How long a blocked put or get waits before checking whether the call ended.
_POLL_SECONDS = 0.02


class CallEnded(Exception):
    """The gRPC call ended, for example because the client went away, before its request stream did."""


class _End:
    """The last queue entry: the source ended, with ``error`` if it raised."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def prefetched(source: Iterator[T], depth: int = 2, alive: Callable[[], bool] = lambda: True) -> Iterator[T]:
    """Yield the items of ``source``, read on a thread of its own up to ``depth`` items ahead.

    The thread is a daemon thread, so that a read still blocked when the
    daemon stops can never hold up the process's exit.

    An exception raised by ``source`` is raised here, after the items before
    it. The reading thread stops at its next item when the consumer stops
    early or ``alive()`` turns false; pass the gRPC context's ``is_active``,
    because a generator that gRPC drops may be closed only much later, by
    the garbage collector. A read blocked in ``source`` ends when gRPC ends
    the call.
    """
    buffer: queue.Queue[T | _End] = queue.Queue(depth)
    stopped = threading.Event()

    def put(entry: T | _End) -> bool:
        # First without waiting, so that the end of a cancelled call still
        # reaches a consumer with room in its queue.
        try:
            buffer.put_nowait(entry)
            return True
        except queue.Full:
            pass
        while not stopped.is_set() and alive():
            try:
                buffer.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as exc:
            put(_End(exc))
            return
        put(_End(None))

    threading.Thread(target=pump, name="stream-reader", daemon=True).start()
    try:
        while True:
            try:
                entry = buffer.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                # The reader gives up without a last entry once the call
                # has ended; this side must not wait for it forever.
                if not alive():
                    raise CallEnded("the call ended while its request stream was being read") from None
                continue
            if isinstance(entry, _End):
                if entry.error is not None:
                    raise entry.error
                return
            yield entry
    finally:
        stopped.set()
