"""Files the device cannot read are set aside, never deleted: renamed beside themselves for a post-mortem.

A truncated state checkpoint or a garbled outbox must not stop a device from starting; deleting it would
destroy the evidence (and maybe the only copy of undelivered predictions). See docs/durability.md.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def set_aside(path: Path, *companions: str) -> Path | None:
    """Rename `path` to `<name>.bad-<UTC time>` in its directory; None when the directory does not allow it
    (read-only), and then the file stays where it is. `companions` are suffixes of files that belong to it
    (SQLite's `-wal`), moved alongside when present."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while aside.exists():  # two in one second: never overwrite an earlier one
        n += 1
        aside = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    try:
        os.replace(path, aside)
    except OSError:
        return None
    for suffix in companions:
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            with contextlib.suppress(OSError):
                os.replace(extra, aside.with_name(aside.name + suffix))
    return aside
