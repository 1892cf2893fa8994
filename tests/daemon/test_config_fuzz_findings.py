"""Configuration inputs that fuzzing found to escape as undocumented errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from niemphong.daemon.config import load_config
from niemphong.daemon.errors import ConfigError


def test_config_not_utf8_rejected(tmp_path: Path) -> None:
    path = tmp_path / "niemphongd.toml"
    path.write_bytes(b"# niemphongd configuration \xdf\n[server]\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path)

    assert "not UTF-8" in str(excinfo.value)
    assert str(path) in str(excinfo.value)
