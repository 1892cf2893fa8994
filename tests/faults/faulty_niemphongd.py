"""niemphongd with PKCS#11 failures injected on request, for the fault tests.

A test arms one fault by writing "FUNCTION ACTION [SKIP]" into the file named
by NIEMPHONG_TEST_FAULT_FILE, for example "C_WrapKey DeviceRemoved" or
"C_UnwrapKey SIGKILL 3". The first SKIP calls (default 0) of that PKCS#11
function made for a request go through; the next one does not reach the
token. An ACTION that names a python-pkcs11 exception raises it in place of
the call, and SIGKILL kills the daemon at that point, as a power cut would.
The file is removed when the fault fires, so each arming fails one call.
Calls from the health thread are never failed, so that its periodic
C_GenerateRandom cannot take the fault. The audit log's checkpoint thread
can take a C_Sign fault, as it would from a real token. Everything else, the
token included, is the real daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pkcs11 import exceptions as p11x

from niemphong.daemon import hsm
from niemphong.daemon.main import main

FAULT_FILE = Path(os.environ["NIEMPHONG_TEST_FAULT_FILE"])
_real_token_call = hsm._token_call
_lock = threading.Lock()


def _armed_action(function: str) -> str | None:
    """Return the action armed for this call of ``function``, or None when it goes through."""
    if threading.current_thread().name == "health":
        return None
    with _lock:
        try:
            armed_function, action, *rest = FAULT_FILE.read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        if armed_function != function:
            return None
        skip = int(rest[0]) if rest else 0
        if skip > 0:
            FAULT_FILE.write_text(f"{armed_function} {action} {skip - 1}")
            return None
        FAULT_FILE.unlink()
    return action


@contextlib.contextmanager
def _faulty_token_call(function: str, mechanism: object = None) -> Iterator[None]:
    action = _armed_action(function)
    if action == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    with _real_token_call(function, mechanism):  # type: ignore[arg-type]
        if action is not None:
            exception: Exception = getattr(p11x, action)()
            raise exception
        yield


hsm._token_call = _faulty_token_call  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main())
