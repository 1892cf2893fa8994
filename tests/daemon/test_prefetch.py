"""prefetched: a request stream read on a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from niemphong.daemon.prefetch import prefetched


def reader_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "stream-reader"]


def wait_for_no_readers(seconds: float = 5) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if not reader_threads():
            return True
        done.wait(0.01)
    return False


def test_prefetched_yields_all_in_order() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))


def test_prefetched_empty_source() -> None:
    assert list(prefetched(iter([]))) == []


def test_prefetched_raises_after_earlier_items() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("stream broken")

    received = []
    with pytest.raises(ValueError, match="stream broken"):
        for item in prefetched(source()):
            received.append(item)

    assert received == [1, 2]


def test_prefetched_reads_on_daemon_thread() -> None:
    threads = []

    def source() -> Iterator[int]:
        threads.append(threading.current_thread())
        yield 1

    list(prefetched(source()))

    assert threads[0] is not threading.current_thread()
    assert threads[0].daemon


def test_prefetched_consumer_stop_ends_reader() -> None:
    produced = []
    finished = threading.Event()

    def source() -> Iterator[int]:
        try:
            for item in range(1000):
                produced.append(item)
                yield item
        finally:
            finished.set()

    stream = prefetched(source(), depth=2)
    assert next(stream) == 0
    stream.close()

    assert finished.wait(5)
    # The reader is at most the queue depth and one blocked put ahead.
    assert len(produced) <= 5


def test_prefetched_stops_when_call_ends() -> None:
    active = threading.Event()
    active.set()

    stream = prefetched(iter(range(1000)), depth=1, alive=active.is_set)
    assert next(stream) == 0
    # The consumer is neither closed nor read again, as when gRPC drops it.
    active.clear()

    try:
        assert wait_for_no_readers()
    finally:
        stream.close()
