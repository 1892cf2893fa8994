"""Process hardening that niemphongd applies to itself before it reads the PIN.

The systemd unit already sets most of this (UMask=, LimitCORE=, User=); the
daemon applies it again so that a daemon started by hand, or under another
service manager, is no weaker:

- umask 0077: the state database, its WAL and anything else the daemon
  creates are readable by the service user only. The unix socket is
  opened to the group explicitly afterwards.
- RLIMIT_CORE 0 and PR_SET_DUMPABLE 0: a crash writes no core file, which
  would hold the PIN, data keys and plaintext from memory, and other
  processes of the same user cannot ptrace the daemon or read its memory
  through /proc.
- No running as root unless ``[server] allow_root = true``. The token needs
  no privilege, and a daemon run as root by hand leaves root-owned state
  files behind that the service user can no longer write.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource

from niemphong.daemon.errors import ConfigError

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
SERVICE_UMASK = 0o077


def check_user(allow_root: bool, euid: int | None = None) -> None:
    """Raise ConfigError when the daemon runs as root and the configuration does not allow it."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return
    if not allow_root:
        raise ConfigError(
            "niemphongd is running as root; run it as the niemphong service user "
            "(deploy/systemd/niemphongd.service), or set [server] allow_root = true on a development machine"
        )
    log.warning("running as root because [server] allow_root = true; do not do this in production")


def harden_process() -> None:
    """Set the umask, forbid core dumps and make the process non-dumpable. Raises OSError on failure."""
    os.umask(SERVICE_UMASK)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(error)}")


def is_dumpable() -> bool:
    """Return whether the kernel would write a core dump of this process or let it be traced."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
