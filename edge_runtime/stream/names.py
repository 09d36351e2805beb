"""The one rule for a stream or device name: it becomes an MQTT topic level and a key in the state file.

A name is 1 to `MAX_NAME` characters of printable Unicode (no control characters, no lone surrogates, no
unassigned code points), without spaces around it and without the MQTT separators and wildcards `/ + #`.
Why these bounds: MQTT caps a whole topic at 65,535 bytes of UTF-8 and Mosquitto drops the connection of a
client that publishes a control character or a non-character, so a name that breaks them would wedge the
outbox; 128 characters (at most 512 bytes of UTF-8) leaves room for any prefix and is longer than any
device id in practice. Standard library only: the predictor checks a name where a reading enters, the
publisher checks it again before a topic is built.
"""

from __future__ import annotations

MAX_NAME = 128  # characters
_FORBIDDEN = frozenset("+#/\0")


def name_problem(value: object) -> str | None:
    """Why `value` cannot name a stream or device; None when it can."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long, at most {MAX_NAME} allowed"
    if _FORBIDDEN.intersection(value):
        return "must not contain / + # or NUL"
    if value != value.strip():
        return "must not start or end with a space"
    if not value.isprintable():  # control characters, surrogates, non-characters, line breaks
        return "must be printable text (no control characters, no unpaired surrogates)"
    return None


def shown(value: object, limit: int = 40) -> str:
    """`value` for a log line or a flag, whatever it holds: printable (else escaped), about `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = text.encode("ascii", "backslashreplace").decode()  # a lone surrogate too
    return text if len(text) <= limit else text[: limit - 3] + "..."
