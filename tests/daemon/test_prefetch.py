"""prefetched: a request stream read on a worker thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from niemphong.daemon.prefetch import prefetched


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def test_prefetched_yields_all_in_order(executor: ThreadPoolExecutor) -> None:
    assert list(prefetched(iter(range(100)), executor, depth=3)) == list(range(100))


def test_prefetched_empty_source(executor: ThreadPoolExecutor) -> None:
    assert list(prefetched(iter([]), executor)) == []


def test_prefetched_raises_after_earlier_items(executor: ThreadPoolExecutor) -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("stream broken")

    received = []
    with pytest.raises(ValueError, match="stream broken"):
        for item in prefetched(source(), executor):
            received.append(item)

    assert received == [1, 2]


def test_prefetched_runs_source_on_worker(executor: ThreadPoolExecutor) -> None:
    threads = []

    def source() -> Iterator[int]:
        threads.append(threading.current_thread())
        yield 1

    list(prefetched(source(), executor))

    assert threads != [threading.current_thread()]


def test_prefetched_consumer_stop_ends_reader(executor: ThreadPoolExecutor) -> None:
    produced = []
    finished = threading.Event()

    def source() -> Iterator[int]:
        try:
            for item in range(1000):
                produced.append(item)
                yield item
        finally:
            finished.set()

    stream = prefetched(source(), executor, depth=2)
    assert next(stream) == 0
    stream.close()

    assert finished.wait(5)
    # The reader is at most the queue depth and one blocked put ahead.
    assert len(produced) <= 5


def test_prefetched_stops_when_call_ends() -> None:
    active = threading.Event()
    active.set()

    with ThreadPoolExecutor(1) as single:
        stream = prefetched(iter(range(1000)), single, depth=1, alive=active.is_set)
        assert next(stream) == 0
        # The consumer is neither closed nor read again, as when gRPC drops it.
        active.clear()

        try:
            # The reading thread gives up and is free for the next task.
            assert single.submit(lambda: "free").result(timeout=5) == "free"
        finally:
            stream.close()
