"""What a token fault is, and the process-wide steps that recover from one.

A token fault is anything after which the daemon's sessions, login or object
handles may be invalid: a USB token pulled out, a network HSM restarted, a
SoftHSM2 token folder moved away. After a fault the daemon never touches the
old sessions again. It finalizes the PKCS#11 module, initializes it again,
logs in again and finds its keys again (see token_supervisor.py).

``C_Finalize`` ends every session of the process at once, so no thread may be
inside a PKCS#11 call while it runs. Each module therefore has one
:class:`SharedExclusiveLock`: token operations hold it shared, and
re-initializing holds it exclusive.

PKCS#11 state does not survive ``fork()``: a child that uses the parent's
sessions corrupts them (PKCS#11 v2.40, section 6.6.1). The daemon never forks
after initializing a module, and :func:`check_not_forked` stops a forked child
that tries to use one.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Iterator

from pkcs11 import exceptions as p11x

from niemphong.daemon.errors import TokenUnavailable

log = logging.getLogger(__name__)

CKF_OS_LOCKING_OK = 0x00000002
CKR_OK = 0x000
CKR_CRYPTOKI_NOT_INITIALIZED = 0x190

# A handle that was valid a moment ago and is now invalid means the token lost
# our sessions or objects. SoftHSM2 2.6 reports a moved-away token folder this
# way: cached key handles fail with CKR_WRAPPING_KEY_HANDLE_INVALID.
HANDLE_INVALID_ERRORS: tuple[type[p11x.PKCS11Error], ...] = (
    p11x.KeyHandleInvalid,
    p11x.ObjectHandleInvalid,
    p11x.WrappingKeyHandleInvalid,
    p11x.UnwrappingKeyHandleInvalid,
)


class InitializeArgs(ctypes.Structure):
    """CK_C_INITIALIZE_ARGS (PKCS#11 v2.40, section 5.4)."""

    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


class SharedExclusiveLock:
    """A readers-writer lock that prefers the writer, and lets a reader re-enter.

    Once a writer waits, new readers wait too, so a re-initialization is not
    starved by a steady stream of token calls. A thread that already holds
    the lock shared may take it shared again without waiting.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._local = threading.local()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._condition:
                while self._writer or self._writers_waiting:
                    self._condition.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._condition:
                    self._readers -= 1
                    if self._readers == 0:
                        self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._condition.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._condition:
                self._writer = False
                self._condition.notify_all()


_gates: dict[str, SharedExclusiveLock] = {}
_gates_lock = threading.Lock()


def library_gate(module: str) -> SharedExclusiveLock:
    """Return the lock that token calls into ``module`` hold shared."""
    with _gates_lock:
        gate = _gates.get(module)
        if gate is None:
            gate = _gates[module] = SharedExclusiveLock()
        return gate


def initialize_module(handle: ctypes.CDLL, module: str) -> None:
    """Finalize ``module`` if it is initialized, then initialize it with CKF_OS_LOCKING_OK.

    The caller holds the module's gate exclusive, or no session exists yet.
    A failed C_Finalize is ignored: after a fault the module may already be
    uninitialized (SoftHSM2 2.6 returns CKR_CRYPTOKI_NOT_INITIALIZED after a
    failed C_Initialize).
    """
    result = handle.C_Finalize(None)
    if result not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
        log.warning("C_Finalize of %s returned CKR 0x%x; initializing again anyway", module, result)
    result = handle.C_Initialize(ctypes.byref(InitializeArgs(flags=CKF_OS_LOCKING_OK)))
    if result != CKR_OK:
        raise TokenUnavailable(f"C_Initialize of {module} failed with CKR 0x{result:x}")
    _remember_initializing_process()


def reinitialize_module(module: str) -> None:
    """Finalize and initialize an already loaded module again, under its gate held exclusive.

    Every session of the process on that module ends. python-pkcs11's library
    object stays usable, because the module stays loaded and its function
    list does not change.
    """
    handle = ctypes.CDLL(module)
    with library_gate(module).exclusive():
        initialize_module(handle, module)


# Fork guard ------------------------------------------------------------------

_initialized_in_pid: int | None = None


def _remember_initializing_process() -> None:
    global _initialized_in_pid
    _initialized_in_pid = os.getpid()


def _warn_before_fork() -> None:
    if _initialized_in_pid == os.getpid():
        log.error("process %d forks after initializing PKCS#11; the child must not use the token", os.getpid())


os.register_at_fork(before=_warn_before_fork)


def check_not_forked() -> None:
    """Raise TokenUnavailable in a child forked after the parent initialized PKCS#11."""
    if _initialized_in_pid is not None and _initialized_in_pid != os.getpid():
        raise TokenUnavailable(
            f"PKCS#11 was initialized in process {_initialized_in_pid}; "
            f"the forked process {os.getpid()} must not use it"
        )
