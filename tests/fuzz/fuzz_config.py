"""Fuzz the daemon's configuration loaders: niemphongd.toml, the policy file
and catalog files. Only ConfigError may escape.

The first input byte picks the file that receives the rest; the other two
files keep the development contents that ``niemphong dev init`` writes.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fuzz, instrumented_imports  # noqa: E402

with instrumented_imports():
    from niemphong.clients import devinit
    from niemphong.daemon.config import load_config
    from niemphong.daemon.errors import ConfigError
    from niemphong.daemon.policy.catalog import load_catalog

NAME = "config"
FILES = ("config", "policy", "catalog")

LAYOUT = devinit.DevLayout(Path(tempfile.mkdtemp(prefix="fuzz-config-")))
CONFIG_TEXT = devinit.render_config(LAYOUT, "/usr/lib/softhsm/libsofthsm2.so", 7000).encode()
POLICY_TEXT = devinit.render_policy(LAYOUT).encode()
CATALOG_BYTES = devinit.sample_catalog_bytes()
CONFIG_PATH = LAYOUT.root / "niemphongd.toml"


def _write(config: bytes = CONFIG_TEXT, policy: bytes = POLICY_TEXT, catalog: bytes = CATALOG_BYTES) -> None:
    LAYOUT.root.mkdir(parents=True, exist_ok=True)
    LAYOUT.secrets.mkdir(exist_ok=True)
    # dev init creates the spool root that the rendered [spool] section names.
    LAYOUT.spool.mkdir(exist_ok=True)
    LAYOUT.pin_file.write_text("1234\n")
    CONFIG_PATH.write_bytes(config)
    LAYOUT.policy.write_bytes(policy)
    LAYOUT.catalog.write_bytes(catalog)


def seeds() -> Iterator[bytes]:
    yield b"\x00" + CONFIG_TEXT
    yield b"\x01" + POLICY_TEXT
    yield b"\x02" + CATALOG_BYTES


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target = FILES[data[0] % len(FILES)]
    content = data[1:]
    _write(**{target: content})
    try:
        if target == "catalog":
            load_catalog([LAYOUT.catalog], [])
        else:
            load_config(CONFIG_PATH)
    except ConfigError:
        pass


_write()
load_config(CONFIG_PATH)  # the unchanged development files must load

if __name__ == "__main__":
    fuzz(NAME, test_one_input, seeds)
