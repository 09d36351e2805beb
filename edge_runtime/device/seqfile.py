"""The publisher's last seq per stream, saved by the device loop with every state checkpoint.

`<state_dir>/seq-<device>.json`: {"format": 1, "clean": bool, "seq": {stream: last seq}}, written to a temp
file, fsynced and renamed (a power cut leaves the old or the new file). The publisher owns seq; its own store
carries seq across restarts (the MQTT outbox on disk), except when that store is new, lost or replaced (stdout
has none at all): then the publisher continues after these, plus a margin when the stop was not clean (seqs
given out after the last checkpoint), so a seq is never given to two predictions.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from edge_runtime.stream.aside import set_aside

FORMAT = 1
log = logging.getLogger("edge_runtime.device")


def seq_path(state_dir: str | Path, device: str) -> Path:
    return Path(state_dir) / f"seq-{device}.json"


def save_seqs(path: Path, seqs: Mapping[str, int], clean: bool) -> bool:
    """Write atomically; `clean`: at a clean stop (these are exactly the last seqs). False when the disk would
    not take it (said in one line; the previous file stays, and the device goes on)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "clean": clean, "seq": dict(seqs)}, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot save the publisher's seqs to %s (%s); predicting goes on", path, exc.strerror)
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def load_seqs(path: Path) -> tuple[dict[str, int], bool]:
    """(last seq per stream, written at a clean stop). No file: ({}, True). An unreadable file is set aside,
    said in one line, and read as ({}, True): the publisher's own store still carries its seqs."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, True
    except OSError as exc:
        log.warning("cannot read the publisher's seqs %s (%s)", path, exc.strerror)
        return {}, True
    try:
        data = json.loads(text)
        seqs = data["seq"]
        if data.get("format") != FORMAT or not isinstance(seqs, dict):
            raise ValueError(f"format {data.get('format')!r}, this edgernn reads {FORMAT}")
        last = {str(k): int(v) for k, v in seqs.items() if isinstance(v, int) and v >= 0}
        return last, bool(data.get("clean", False))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        aside = set_aside(path)
        kept = f"; kept as {aside.name}" if aside is not None else ""
        log.warning("the publisher's seqs %s are not readable (%s)%s", path, exc, kept)
        return {}, True
