"""niemphongd with a fault-injecting wrapper around its real SoftHSM2 token.

Run as ``python faulty_niemphongd.py --config FILE --plan PLAN --events EVENTS``.
The daemon is the real one; only the python-pkcs11 objects it uses (token,
sessions, keys) are wrapped. Before every call the wrapper reads the plan, a
JSON file the test rewrites:

    {"down": false, "fail": ["wrap_key"]}

``fail`` lists fault points; the next call at a listed point raises
DeviceRemoved, as a pulled-out token would, and the point is removed from the
plan. While ``down`` is true every call raises DeviceRemoved and the token is
not listed, so opening it again fails as well. ``then_down`` sets ``down``
when a listed point fails: the token stays away until the test brings it back.

A point is a python-pkcs11 method name (``generate_random``, ``create_object``,
``get_key``, ``wrap_key``, ``unwrap_key``, ``destroy``, ``encrypt``,
``decrypt``, ...) or ``get_attribute:NAME`` for reading one attribute. The
daemon makes some calls through the module's exported functions instead
(pkcs11_direct.py); each of those is the point of the python-pkcs11 method
that does the same work, so ``create_object`` also fails the direct import
of a data key and ``get_attribute:VALUE`` the direct read of its value.

After an injected fault every session that existed at that moment is dead, as
it would be in a real token. Any later call on such a session, or on a key
found through it, is written to the events file as a violation and fails with
SessionHandleInvalid. Injected faults are written there too, one JSON object
a line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import exceptions as p11x

from niemphong.daemon import main as daemon_main
from niemphong.daemon.config import TokenConfig
from niemphong.daemon.errors import TokenUnavailable
from niemphong.daemon.hsm import Pkcs11Token


class FaultPlan:
    """The plan file, read before every call, and the events file."""

    def __init__(self, plan: Path, events: Path) -> None:
        self.plan = plan
        self.events = events
        self.lock = threading.Lock()
        # Sessions created before the latest injected fault are dead.
        self.epoch = 0

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.plan.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write(self, plan: dict[str, Any]) -> None:
        scratch = self.plan.with_suffix(".tmp")
        scratch.write_text(json.dumps(plan))
        os.replace(scratch, self.plan)

    def record(self, **event: Any) -> None:
        with self.events.open("a") as handle:
            handle.write(json.dumps(event) + "\n")

    def down(self) -> bool:
        return bool(self._read().get("down"))

    def before_call(self, point: str, epoch: int) -> None:
        with self.lock:
            if epoch < self.epoch:
                self.record(event="violation", point=point, session_epoch=epoch, epoch=self.epoch)
                raise p11x.SessionHandleInvalid()
            plan = self._read()
            fail = list(plan.get("fail", []))
            if plan.get("down"):
                self.epoch += 1
                raise p11x.DeviceRemoved()
            if point in fail:
                fail.remove(point)
                plan["fail"] = fail
                if plan.get("then_down"):
                    plan["down"] = True
                self._write(plan)
                self.epoch += 1
                self.record(event="injected", point=point)
                raise p11x.DeviceRemoved()


def _unwrap(value: Any) -> Any:
    return value._target if isinstance(value, _Proxy) else value


class _Proxy:
    """Forwards attribute access to ``target``; calls pass through the plan first."""

    def __init__(self, target: Any, plan: FaultPlan, epoch: int) -> None:
        self._target = target
        self._plan = plan
        self._epoch = epoch

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, pkcs11.Session):
            return _Proxy(value, self._plan, self._plan.epoch)
        if isinstance(value, pkcs11.Object):
            return _Proxy(value, self._plan, self._epoch)
        if hasattr(value, "__next__"):
            return (self._wrap(item) for item in value)
        return value

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._plan.before_call(name, self._epoch)
            args = tuple(_unwrap(arg) for arg in args)
            kwargs = {key: _unwrap(value) for key, value in kwargs.items()}
            return self._wrap(attribute(*args, **kwargs))

        return call

    def __getitem__(self, key: Any) -> Any:
        self._plan.before_call(f"get_attribute:{key.name}", self._epoch)
        return self._target[key]

    def __eq__(self, other: object) -> bool:
        return bool(self._target == _unwrap(other))

    def __hash__(self) -> int:
        return hash(self._target)


# The methods of DirectCalls, by the point of the python-pkcs11 method doing the same work.
_DIRECT_POINTS = {
    "create_data_key": "create_object",
    "wrap_key": "wrap_key",
    "unwrap_data_key": "unwrap_key",
    "read_value": "get_attribute:VALUE",
    "destroy": "destroy",
}


class _DirectProxy:
    """Passes the daemon's direct PKCS#11 calls through the plan, on the epoch of their session."""

    def __init__(self, target: Any, plan: FaultPlan) -> None:
        self._target = target
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        point = _DIRECT_POINTS[name]

        def call(session: Any, *args: Any) -> Any:
            self._plan.before_call(point, session._epoch)
            return attribute(_unwrap(session), *(_unwrap(arg) for arg in args))

        return call


class _TokenProxy(_Proxy):
    def open(self, **kwargs: Any) -> _Proxy:
        self._plan.before_call("open", self._plan.epoch)
        return _Proxy(self._target.open(**kwargs), self._plan, self._plan.epoch)


def faulty_token_factory(plan: FaultPlan) -> Any:
    class FaultyToken(Pkcs11Token):
        """The real Pkcs11Token, on wrapped python-pkcs11 objects."""

        def __init__(self, config: TokenConfig, pin: str) -> None:
            super().__init__(config, pin)
            if self._direct is not None:
                self._direct = _DirectProxy(self._direct, plan)  # type: ignore[assignment]

        def _find_token(self) -> Any:
            if plan.down():
                raise TokenUnavailable(f"no token matches {self.describe()} (injected)")
            return _TokenProxy(super()._find_token(), plan, plan.epoch)

    def open_token(config: TokenConfig, pin: str) -> Pkcs11Token:
        return FaultyToken(config, pin)

    return open_token


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--events", required=True, type=Path)
    options = parser.parse_args()
    plan = FaultPlan(options.plan, options.events)
    return daemon_main._serve(options.config, open_token=faulty_token_factory(plan))


if __name__ == "__main__":
    sys.exit(main())
