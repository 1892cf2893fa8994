"""Single PKCS#11 calls where python-pkcs11 makes two.

python-pkcs11 0.10 asks the module for the output length first (a call with
a NULL buffer) and then calls again for the data, in ``wrap_key`` and in
reading an attribute. On a USB token each call can be a round trip to the
device, and some modules run the whole operation to answer the length
query. The lengths needed here are known in advance (an AES key wrap of a
32-byte key is 40 bytes, RFC 3394 and RFC 5649; a data key is 32 bytes), so
these functions pass a buffer of that size and make one call. If the module
answers CKR_BUFFER_TOO_SMALL, they fall back on python-pkcs11's two calls.

The calls go through the functions the module exports, as the re-initialize
step in hsm.py does, with the session and object handles python-pkcs11 holds.
"""

from __future__ import annotations

import ctypes

import pkcs11
from pkcs11 import Attribute
from pkcs11 import exceptions as p11x

CKR_OK = 0x000
CKR_BUFFER_TOO_SMALL = 0x150

# Return values that the daemon treats as "the token is gone" (hsm.py),
# mapped to python-pkcs11's exceptions so that the same handlers apply.
_ERRORS: dict[int, type[p11x.PKCS11Error]] = {
    0x005: p11x.GeneralError,
    0x030: p11x.DeviceError,
    0x031: p11x.DeviceMemory,
    0x032: p11x.DeviceRemoved,
    0x0B0: p11x.SessionClosed,
    0x0B3: p11x.SessionHandleInvalid,
    0x0E0: p11x.TokenNotPresent,
    0x0E1: p11x.TokenNotRecognised,
    0x101: p11x.UserNotLoggedIn,
}


class _Mechanism(ctypes.Structure):
    """CK_MECHANISM (PKCS#11 v2.40, section 3.6)."""

    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong)]


class _Attribute(ctypes.Structure):
    """CK_ATTRIBUTE (PKCS#11 v2.40, section 4.1)."""

    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


def _error(result: int) -> p11x.PKCS11Error:
    return _ERRORS.get(result, p11x.PKCS11Error)(f"CKR 0x{result:x}")


class DirectCalls:
    """The module's exported C_WrapKey and C_GetAttributeValue, called with sized buffers."""

    def __init__(self, module: ctypes.CDLL) -> None:
        self._wrap = module.C_WrapKey
        self._wrap.argtypes = [
            ctypes.c_ulong, ctypes.POINTER(_Mechanism), ctypes.c_ulong, ctypes.c_ulong,
            ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulong),
        ]
        self._wrap.restype = ctypes.c_ulong
        self._get_attribute = module.C_GetAttributeValue
        self._get_attribute.argtypes = [
            ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_Attribute), ctypes.c_ulong,
        ]
        self._get_attribute.restype = ctypes.c_ulong

    def wrap_key(
        self, session: pkcs11.Session, kek: pkcs11.SecretKey, key: pkcs11.SecretKey,
        mechanism: pkcs11.Mechanism, expected_len: int,
    ) -> bytes:
        """Wrap ``key`` under ``kek`` with a parameterless mechanism in one C_WrapKey call."""
        buffer = ctypes.create_string_buffer(expected_len)
        length = ctypes.c_ulong(expected_len)
        mech = _Mechanism(int(mechanism), None, 0)
        # ctypes releases the GIL for the duration of the call.
        result = self._wrap(session.handle, ctypes.byref(mech), kek.handle, key.handle, buffer, ctypes.byref(length))
        if result == CKR_BUFFER_TOO_SMALL:
            return kek.wrap_key(key, mechanism=mechanism)
        if result != CKR_OK:
            raise _error(result)
        return buffer.raw[: length.value]

    def read_value(self, session: pkcs11.Session, key: pkcs11.SecretKey, expected_len: int) -> bytes:
        """Read CKA_VALUE of ``key`` in one C_GetAttributeValue call."""
        buffer = ctypes.create_string_buffer(expected_len)
        attribute = _Attribute(int(Attribute.VALUE), ctypes.cast(buffer, ctypes.c_void_p), expected_len)
        result = self._get_attribute(session.handle, key.handle, ctypes.byref(attribute), 1)
        if result == CKR_BUFFER_TOO_SMALL:
            return bytes(key[Attribute.VALUE])
        if result != CKR_OK:
            raise _error(result)
        return buffer.raw[: attribute.ulValueLen]
