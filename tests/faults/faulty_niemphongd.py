"""niemphongd with PKCS#11 failures injected on request, for the fault tests.

A test arms one failure by writing "FUNCTION EXCEPTION", for example
"C_WrapKey DeviceRemoved", into the file named by NIEMPHONG_TEST_FAULT_FILE.
The next call of that PKCS#11 function made for a request raises that
python-pkcs11 exception instead of reaching the token, and the file is
removed, so each arming fails one call. Calls from the health thread are
never failed, so that its periodic C_GenerateRandom cannot take the fault.
Everything else, the token included, is the real daemon.
"""

from __future__ import annotations

import contextlib
import os
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


def _armed_fault(function: str) -> Exception | None:
    if threading.current_thread().name == "health":
        return None
    with _lock:
        try:
            armed_function, exception_name = FAULT_FILE.read_text().split()
        except FileNotFoundError:
            return None
        if armed_function != function:
            return None
        FAULT_FILE.unlink()
    exception: Exception = getattr(p11x, exception_name)()
    return exception


@contextlib.contextmanager
def _faulty_token_call(function: str, mechanism: object = None) -> Iterator[None]:
    fault = _armed_fault(function)
    with _real_token_call(function, mechanism):  # type: ignore[arg-type]
        if fault is not None:
            raise fault
        yield


hsm._token_call = _faulty_token_call  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main())
