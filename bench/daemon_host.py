"""niemphongd with a slow token: the real daemon in its own process, its token sessions delayed.

    python -m bench.daemon_host --config FILE --token-latency-ms 10 --token-parallel 4

Used only by the benchmarks; the installed niemphongd has no such options.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from bench.token_faults import SlowDevice, slow_down
from niemphong.daemon.config import load_config
from niemphong.daemon.server import Daemon


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.daemon_host", description=__doc__)
    parser.add_argument("--config", required=True, help="path of niemphongd.toml")
    parser.add_argument("--token-latency-ms", type=float, default=0.0, help="delay before each PKCS#11 call, in ms")
    parser.add_argument("--token-parallel", type=int, default=1, help="PKCS#11 calls the slow device serves at once")
    options = parser.parse_args()

    config = load_config(options.config)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    daemon = Daemon(config)
    if options.token_latency_ms > 0:
        # The supervisor's current token; one it opens after a fault would be fast again.
        slow_down(daemon.token.current(), SlowDevice(options.token_latency_ms / 1000, options.token_parallel))
    daemon.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Timed waits, so that a signal delivered to another thread still runs its handler.
    while not stop.wait(timeout=0.5):
        pass
    daemon.stop(grace=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
