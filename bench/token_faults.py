"""A slow token: the real SoftHSM2 token with a delay around every PKCS#11 call.

USB crypto tokens answer each command after several milliseconds. This
wraps the sessions of a running :class:`~niemphong.daemon.hsm.Pkcs11Token`
so that each PKCS#11 call sleeps first, while the real call still runs on
SoftHSM2. A semaphore models how many calls the device serves at once; the
sleep releases the GIL, as a blocked call into a real module does.

Each python-pkcs11 method makes more than one PKCS#11 call (measured with
OpenSC's pkcs11-spy on python-pkcs11 0.10 and SoftHSM2 2.6): building the
Python object of a new key reads two attributes, and a key look-up is a
find of three calls plus two attribute reads. CALLS_PER_METHOD delays each
method once per call it makes. The daemon wraps and unwraps data keys through
the module's exported functions, one call each (pkcs11_direct.py); those are
delayed once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

CALLS_PER_METHOD = {
    "generate_random": 1,
    "create_object": 3,
    "get_key": 5,
    "wrap_key": 2,
    "unwrap_key": 3,
    "destroy": 1,
    "read_attribute": 2,
    "direct_create_data_key": 1,
    "direct_wrap_key": 1,
    "direct_unwrap_data_key": 1,
    "direct_read_value": 1,
    "direct_destroy": 1,
}


class SlowDevice:
    """The delay and the number of calls the device serves at once."""

    def __init__(self, latency_seconds: float, parallel: int) -> None:
        self.latency_seconds = latency_seconds
        self._gate = threading.BoundedSemaphore(parallel)

    def delay(self, method: str) -> None:
        for _ in range(CALLS_PER_METHOD[method]):
            with self._gate:
                time.sleep(self.latency_seconds)


def _inner(value: Any) -> Any:
    return value._inner if isinstance(value, _Proxy) else value


class _Proxy:
    def __init__(self, inner: Any, device: SlowDevice) -> None:
        self._inner = inner
        self._device = device

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SlowKey(_Proxy):
    def wrap_key(self, key: Any, **kwargs: Any) -> bytes:
        self._device.delay("wrap_key")
        return self._inner.wrap_key(_inner(key), **kwargs)

    def unwrap_key(self, *args: Any, **kwargs: Any) -> SlowKey:
        self._device.delay("unwrap_key")
        return SlowKey(self._inner.unwrap_key(*args, **kwargs), self._device)

    def destroy(self) -> None:
        self._device.delay("destroy")
        self._inner.destroy()

    def __getitem__(self, attribute: Any) -> Any:
        self._device.delay("read_attribute")
        return self._inner[attribute]


class SlowSession(_Proxy):
    def generate_random(self, bits: int) -> bytes:
        self._device.delay("generate_random")
        return self._inner.generate_random(bits)

    def create_object(self, attributes: Any) -> SlowKey:
        self._device.delay("create_object")
        return SlowKey(self._inner.create_object(attributes), self._device)

    def get_key(self, **kwargs: Any) -> SlowKey:
        self._device.delay("get_key")
        return SlowKey(self._inner.get_key(**kwargs), self._device)


class SlowDirectCalls(_Proxy):
    def create_data_key(self, session: Any, value: bytes) -> int:
        self._device.delay("direct_create_data_key")
        return self._inner.create_data_key(_inner(session), value)

    def wrap_key(self, session: Any, kek: Any, key: int, mechanism: Any, expected_len: int) -> bytes:
        self._device.delay("direct_wrap_key")
        return self._inner.wrap_key(_inner(session), _inner(kek), key, mechanism, expected_len)

    def unwrap_data_key(self, session: Any, kek: Any, mechanism: Any, wrapped: bytes) -> int:
        self._device.delay("direct_unwrap_data_key")
        return self._inner.unwrap_data_key(_inner(session), _inner(kek), mechanism, wrapped)

    def read_value(self, session: Any, key: int, expected_len: int) -> bytes:
        self._device.delay("direct_read_value")
        return self._inner.read_value(_inner(session), key, expected_len)

    def destroy(self, session: Any, handle: int) -> None:
        self._device.delay("direct_destroy")
        self._inner.destroy(_inner(session), handle)


def slow_down(token: Any, device: SlowDevice) -> None:
    """Replace the pool sessions of a Pkcs11Token with slow ones; the login session stays fast."""
    if token._direct is not None:
        token._direct = SlowDirectCalls(token._direct, device)
    sessions = []
    while not token._pool.empty():
        sessions.append(token._pool.get_nowait())
    for session in sessions:
        token._pool.put(SlowSession(session, device))
    token._kek_cache.clear()
