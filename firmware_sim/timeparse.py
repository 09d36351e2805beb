"""Durations as people write them: `90`, `90s`, `500ms`, `15m`, `1h`, `1h30m`, `2d`."""

from __future__ import annotations

import math
import re
from typing import Any

from edgernn.errors import ConfigError

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|min|s|m|h|d)")
_ALLOWED = "a number of seconds or e.g. 500ms, 30s, 15m, 1h, 1h30m, 2d"


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds (>= 0) from a number or a string such as `1h30m`; ConfigError naming the bad value otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"bad {what} {value!r}; use {_ALLOWED}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ConfigError(f"bad {what} {value!r}; use {_ALLOWED}") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ConfigError(f"bad {what} {value!r}; use {_ALLOWED}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"bad {what} {value!r}: must be >= 0; use {_ALLOWED}")
    return seconds


def format_duration(seconds: float) -> str:
    """`3725.0` -> `1h2m5s`; below a minute, seconds with up to 3 decimals."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"
