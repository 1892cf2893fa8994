"""Single PKCS#11 calls where python-pkcs11 makes several.

python-pkcs11 0.10 queries the module for the output length first (a call with
a NULL buffer) and then calls again for the data, in ``wrap_key`` and in
reading an attribute, and it reads the class and key type of every object
it creates or unwraps to build its Python object. On a USB token each call
can be a round trip to the device, and some modules run the whole operation
to answer the length query. The lengths needed here are known in advance
(an AES key wrap of a 32-byte key is 40 bytes, RFC 3394 and RFC 5649; a data
key is 32 bytes) and the daemon needs only object handles, so these
functions pass a buffer of that size and make one call each. If the module
answers CKR_BUFFER_TOO_SMALL, they call once more with the length it asked for.

The calls go through the functions the module exports, as the re-initialize
step in hsm.py does, with the session and key handles python-pkcs11 holds.
"""

from __future__ import annotations

import ctypes

import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11x

CKR_OK = 0x000
CKR_BUFFER_TOO_SMALL = 0x150

# Return values mapped to python-pkcs11's exceptions, so that hsm.py's
# handlers for a vanished token, a lost session or login, and handles that a
# fault invalidated apply to these calls as to python-pkcs11's. Any other
# value raises PKCS11Error.
_ERRORS: dict[int, type[p11x.PKCS11Error]] = {
    0x003: p11x.SlotIDInvalid,
    0x005: p11x.GeneralError,
    0x030: p11x.DeviceError,
    0x031: p11x.DeviceMemory,
    0x032: p11x.DeviceRemoved,
    0x060: p11x.KeyHandleInvalid,
    0x082: p11x.ObjectHandleInvalid,
    0x0A0: p11x.PinIncorrect,
    0x0A3: p11x.PinExpired,
    0x0A4: p11x.PinLocked,
    0x0B0: p11x.SessionClosed,
    0x0B3: p11x.SessionHandleInvalid,
    0x0E0: p11x.TokenNotPresent,
    0x0E1: p11x.TokenNotRecognised,
    0x0F0: p11x.UnwrappingKeyHandleInvalid,
    0x101: p11x.UserNotLoggedIn,
    0x113: p11x.WrappingKeyHandleInvalid,
}


class _Mechanism(ctypes.Structure):
    """CK_MECHANISM (PKCS#11 v2.40, section 3.6)."""

    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong)]


class _Attribute(ctypes.Structure):
    """CK_ATTRIBUTE (PKCS#11 v2.40, section 4.1)."""

    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


def _error(result: int) -> p11x.PKCS11Error:
    return _ERRORS.get(result, p11x.PKCS11Error)(f"CKR 0x{result:x}")


class _DataKeyTemplate:
    """The attributes of a temporary AES data key: a session object whose value can be read.

    The ctypes buffers live as long as this object, so the template stays
    valid for the call that uses it.
    """

    def __init__(self, value: bytes | None = None) -> None:
        self._class = ctypes.c_ulong(int(ObjectClass.SECRET_KEY))
        self._key_type = ctypes.c_ulong(int(KeyType.AES))
        self._false = ctypes.c_ubyte(0)
        self._true = ctypes.c_ubyte(1)
        entries: list[tuple[int, object, int]] = [
            (int(Attribute.CLASS), self._class, ctypes.sizeof(ctypes.c_ulong)),
            (int(Attribute.KEY_TYPE), self._key_type, ctypes.sizeof(ctypes.c_ulong)),
            (int(Attribute.TOKEN), self._false, 1),
            (int(Attribute.SENSITIVE), self._false, 1),
            (int(Attribute.EXTRACTABLE), self._true, 1),
        ]
        if value is not None:
            self._value = ctypes.create_string_buffer(value, len(value))
            entries.append((int(Attribute.VALUE), self._value, len(value)))
        self.attributes = (_Attribute * len(entries))(*(
            _Attribute(kind, ctypes.cast(ctypes.pointer(buffer), ctypes.c_void_p), size)  # type: ignore[arg-type]
            for kind, buffer, size in entries
        ))
        self.count = len(entries)


class DirectCalls:
    """The module's exported key functions, called with sized buffers and by object handle.

    Each method makes one PKCS#11 call, or two when the module returns
    CKR_BUFFER_TOO_SMALL. python-pkcs11 makes two or more for the same work,
    because it also reads the class and key type of every object it creates
    or unwraps.
    """

    def __init__(self, module: ctypes.CDLL) -> None:
        self._wrap = module.C_WrapKey
        self._wrap.argtypes = [
            ctypes.c_ulong, ctypes.POINTER(_Mechanism), ctypes.c_ulong, ctypes.c_ulong,
            ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulong),
        ]
        self._wrap.restype = ctypes.c_ulong
        self._unwrap = module.C_UnwrapKey
        self._unwrap.argtypes = [
            ctypes.c_ulong, ctypes.POINTER(_Mechanism), ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong,
            ctypes.POINTER(_Attribute), ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
        ]
        self._unwrap.restype = ctypes.c_ulong
        self._create = module.C_CreateObject
        self._create.argtypes = [
            ctypes.c_ulong, ctypes.POINTER(_Attribute), ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
        ]
        self._create.restype = ctypes.c_ulong
        self._destroy = module.C_DestroyObject
        self._destroy.argtypes = [ctypes.c_ulong, ctypes.c_ulong]
        self._destroy.restype = ctypes.c_ulong
        self._get_attribute = module.C_GetAttributeValue
        self._get_attribute.argtypes = [
            ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_Attribute), ctypes.c_ulong,
        ]
        self._get_attribute.restype = ctypes.c_ulong

    def create_data_key(self, session: pkcs11.Session, value: bytes) -> int:
        """Import ``value`` as a temporary AES session key in one C_CreateObject call; return its handle."""
        template = _DataKeyTemplate(value)
        handle = ctypes.c_ulong(0)
        result = self._create(session.handle, template.attributes, template.count, ctypes.byref(handle))
        if result != CKR_OK:
            raise _error(result)
        return handle.value

    def unwrap_data_key(
        self, session: pkcs11.Session, kek: pkcs11.SecretKey, mechanism: pkcs11.Mechanism, wrapped: bytes,
    ) -> int:
        """Unwrap ``wrapped`` under ``kek`` into a temporary AES session key in one C_UnwrapKey call."""
        template = _DataKeyTemplate()
        handle = ctypes.c_ulong(0)
        mech = _Mechanism(int(mechanism), None, 0)
        result = self._unwrap(
            session.handle, ctypes.byref(mech), kek.handle, wrapped, len(wrapped),
            template.attributes, template.count, ctypes.byref(handle),
        )
        if result != CKR_OK:
            raise _error(result)
        return handle.value

    def destroy(self, session: pkcs11.Session, handle: int) -> None:
        """Destroy the session object ``handle`` in one C_DestroyObject call."""
        result = self._destroy(session.handle, handle)
        if result != CKR_OK:
            raise _error(result)

    def wrap_key(
        self, session: pkcs11.Session, kek: pkcs11.SecretKey, key: int,
        mechanism: pkcs11.Mechanism, expected_len: int,
    ) -> bytes:
        """Wrap the key with handle ``key`` under ``kek`` with a parameterless mechanism in one C_WrapKey call."""
        mech = _Mechanism(int(mechanism), None, 0)
        buffer = ctypes.create_string_buffer(expected_len)
        length = ctypes.c_ulong(expected_len)
        # ctypes releases the GIL for the duration of the call.
        result = self._wrap(session.handle, ctypes.byref(mech), kek.handle, key, buffer, ctypes.byref(length))
        if result == CKR_BUFFER_TOO_SMALL:
            # The module set length to what it needs.
            buffer = ctypes.create_string_buffer(length.value)
            result = self._wrap(session.handle, ctypes.byref(mech), kek.handle, key, buffer, ctypes.byref(length))
        if result != CKR_OK:
            raise _error(result)
        return buffer.raw[: length.value]

    def read_value(self, session: pkcs11.Session, key: int, expected_len: int) -> bytes:
        """Read CKA_VALUE of the key with handle ``key`` in one C_GetAttributeValue call."""
        buffer = ctypes.create_string_buffer(expected_len)
        attribute = _Attribute(int(Attribute.VALUE), ctypes.cast(buffer, ctypes.c_void_p), expected_len)
        result = self._get_attribute(session.handle, key, ctypes.byref(attribute), 1)
        if result == CKR_BUFFER_TOO_SMALL:
            # ulValueLen now contains the length the value needs.
            buffer = ctypes.create_string_buffer(attribute.ulValueLen)
            attribute = _Attribute(int(Attribute.VALUE), ctypes.cast(buffer, ctypes.c_void_p), attribute.ulValueLen)
            result = self._get_attribute(session.handle, key, ctypes.byref(attribute), 1)
        if result != CKR_OK:
            raise _error(result)
        return buffer.raw[: attribute.ulValueLen]
