"""Ctrl+C and termination signals during a streaming call, handled at a safe point.

Python raises KeyboardInterrupt wherever the main thread happens to be. When
that is inside grpcio's own code, the call's state can be left half updated,
and closing the channel afterwards can wait forever. Inside
:func:`deferred_interrupts` the signal is only recorded; the loop that reads
the response stream calls :meth:`Interrupts.check` after each message, which
raises the interruption there, outside grpcio. The caller's cleanup (cancel
the call, delete the temporary file) then runs as usual.

A streaming call sends messages often, so the delay is one message. While no
message arrives the interruption waits for one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """Signals received inside :func:`deferred_interrupts`, replayed by :meth:`check`."""

    def __init__(self, previous: dict[int, Any]) -> None:
        self._previous = previous
        self._pending: tuple[int, FrameType | None] | None = None

    def record(self, number: int, frame: FrameType | None) -> None:
        if self._pending is None:
            self._pending = (number, frame)

    def check(self) -> None:
        """Raise the recorded interruption, through the handler that was in place before."""
        if self._pending is None:
            return
        number, frame = self._pending
        self._pending = None
        handler = self._previous.get(number)
        if callable(handler):
            handler(number, frame)
        if number == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + number)


@contextmanager
def deferred_interrupts() -> Iterator[Interrupts]:
    """Record SIGINT, SIGTERM and SIGHUP instead of acting on them; see the module docstring.

    Outside the main thread, where Python cannot set signal handlers, the
    signals keep their handlers and :meth:`Interrupts.check` does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield Interrupts({})
        return

    previous = {number: signal.getsignal(number) for number in _SIGNALS}
    interrupts = Interrupts(previous)
    for number in _SIGNALS:
        if previous[number] is not signal.SIG_IGN:
            signal.signal(number, interrupts.record)
    try:
        yield interrupts
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    # A signal that came after the last check is acted on now, outside the call.
    interrupts.check()
