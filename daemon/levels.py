"""Classification levels (độ mật) and what the daemon may do with each.

Tối mật and Mật are sealed, each under its own key. Tuyệt mật has a name here
only so that a request naming it can be rejected: Tuyệt mật documents are never
digitized, whatever their age, under the provincial guidance on digitizing
state-secret documents (UBND tỉnh Đắk Lắk, May 2025), which applies the Law on
Protection of State Secrets No. 29/2018/QH14.
"""

from __future__ import annotations

import enum

from niemphong.v1 import niemphong_pb2 as pb


class Level(enum.IntEnum):
    """A level as stored in envelope headers and the registry (same numbers as the proto enum)."""

    MAT = 1
    TOI_MAT = 2
    TUYET_MAT = 3

    @property
    def config_name(self) -> str:
        """Name of the level in configuration files and on the command line."""
        return _CONFIG_NAMES[self]

    @property
    def vietnamese_name(self) -> str:
        return _VIETNAMESE_NAMES[self]

    @property
    def sealable(self) -> bool:
        return self is not Level.TUYET_MAT

    @classmethod
    def from_config_name(cls, name: str) -> Level:
        for level, config_name in _CONFIG_NAMES.items():
            if config_name == name:
                return level
        raise ValueError(f"unknown level {name!r}; expected one of {sorted(_CONFIG_NAMES.values())}")

    @classmethod
    def from_proto(cls, value: int) -> Level | None:
        """Return the level for a proto enum value, or None for LEVEL_UNSPECIFIED and unknown values."""
        if value == pb.LEVEL_UNSPECIFIED:
            return None
        try:
            return cls(value)
        except ValueError:
            return None


_CONFIG_NAMES = {Level.MAT: "mat", Level.TOI_MAT: "toi-mat", Level.TUYET_MAT: "tuyet-mat"}
_VIETNAMESE_NAMES = {Level.MAT: "Mật", Level.TOI_MAT: "Tối mật", Level.TUYET_MAT: "Tuyệt mật"}

SEALABLE_LEVELS = (Level.TOI_MAT, Level.MAT)
