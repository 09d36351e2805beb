"""Where the broker is and how to log in: `parse_broker_url` and `BrokerConfig` (standard library only).

Credentials come from a config file or the environment, never from the command line (where `ps` shows
them). They never appear in `repr`, logs, error messages or the status topic.

    EDGERNN_MQTT_CONFIG          path of a TOML file with an [mqtt] table (keys: the fields below, and url)
    EDGERNN_MQTT_USERNAME        username
    EDGERNN_MQTT_PASSWORD        password (or EDGERNN_MQTT_PASSWORD_FILE: a file holding it)
    EDGERNN_MQTT_CA              CA bundle that signed the broker's certificate (PEM)
    EDGERNN_MQTT_CERT / _KEY     client certificate and key, for brokers that require them
    EDGERNN_MQTT_PROTOCOL        3.1.1 (default) or 5
    EDGERNN_MQTT_CLIENT_ID       default: edgernn-<device>

The environment overrides the file, which overrides the defaults.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edgernn.config import read_toml
from edgernn.errors import ConfigError

log = logging.getLogger("edge_runtime.publish")

SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}
PROTOCOLS = ("3.1.1", "5")
ENV = {
    "username": "EDGERNN_MQTT_USERNAME",
    "password": "EDGERNN_MQTT_PASSWORD",
    "password_file": "EDGERNN_MQTT_PASSWORD_FILE",
    "ca_file": "EDGERNN_MQTT_CA",
    "cert_file": "EDGERNN_MQTT_CERT",
    "key_file": "EDGERNN_MQTT_KEY",
    "protocol": "EDGERNN_MQTT_PROTOCOL",
    "client_id": "EDGERNN_MQTT_CLIENT_ID",
}
CONFIG_ENV = "EDGERNN_MQTT_CONFIG"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:  # never holds credentials: parse_broker_url strips them
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> tuple[BrokerAddress, str | None, str | None]:
    """`mqtt://host[:1883]` or `mqtts://host[:8883]` -> (address, username, password) from the URL, if any."""
    try:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid broker URL {_redact_url(url)!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unsupported broker URL scheme {scheme!r} in {_redact_url(url)!r}; allowed: "
            "mqtt://HOST[:1883], mqtts://HOST[:8883] (TLS)"
        )
    if not parts.hostname:
        raise ConfigError(f"broker URL {_redact_url(url)!r} has no host; e.g. mqtt://127.0.0.1:1883")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"broker URL {_redact_url(url)!r} has a path or query; only scheme://host:port is allowed")
    default_port, tls = SCHEMES[scheme]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return BrokerAddress(parts.hostname, port or default_port, tls), user, password


def _redact_url(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}" if "://" in head else f"***@{tail}"


@dataclass(frozen=True)
class BrokerConfig:
    """How to connect: credentials, TLS, protocol, client id, timings. Safe to print: secrets are hidden."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # PEM CA bundle; with mqtts:// and no ca_file the system CAs are used
    cert_file: str | None = None  # client certificate (PEM), for brokers with require_certificate
    key_file: str | None = field(default=None, repr=False)
    tls_insecure: bool = False  # skip the hostname check (lab brokers with IP certificates); not the chain check
    protocol: str = "3.1.1"  # "3.1.1" or "5"
    client_id: str | None = None  # default "edgernn-<device>"; must be unique per broker
    keepalive: int = 30  # seconds; the broker publishes the last will after 1.5x this without traffic
    connect_timeout: float = 5.0  # open_publisher waits this long for the first CONNACK (so auth errors surface)
    reconnect_max_delay: float = 30.0  # back-off cap between reconnect attempts, seconds
    status_interval: float = 60.0  # seconds between periodic status messages (counters)
    # After a reconnect, also re-send what the broker acknowledged this many seconds before the connection
    # dropped: Mosquitto acknowledges before its autosave, so a broker killed in that moment loses them.
    # Subscribers drop the duplicates by (device, seq). 0 turns it off.
    resend_acked_s: float = 2.0
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unsupported MQTT protocol {self.protocol!r}; allowed: {', '.join(PROTOCOLS)}")
        if self.keepalive < 5:
            raise ConfigError(f"keepalive {self.keepalive}s is too short; allowed: 5 s or more")
        if self.password is not None and self.username is None:
            raise ConfigError("a password was given without a username; set EDGERNN_MQTT_USERNAME or username")
        if self.key_file and not self.cert_file:
            raise ConfigError("key_file was given without cert_file; a client key needs its certificate")

    @property
    def tls_files(self) -> bool:
        return bool(self.ca_file or self.cert_file)

    def with_url_credentials(self, username: str | None, password: str | None) -> BrokerConfig:
        if username is None:
            return self
        if self.username is not None and self.username != username:
            raise ConfigError("the broker URL and the config name different usernames; give it in one place")
        return replace(self, username=username, password=password if password is not None else self.password)

    def check_files(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ConfigError(f"{name} {path!r} does not exist or is not a file")

    @classmethod
    def load(
        cls, path: str | Path | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[BrokerConfig, str | None]:
        """The file (path, else $EDGERNN_MQTT_CONFIG), then the environment on top -> (config, url in the file)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        url: str | None = None
        path = path or env.get(CONFIG_ENV)
        if path:
            values, url = _read_file(Path(path))
        for name, var in ENV.items():
            if env.get(var):
                values[name] = env[var]
        return cls.from_mapping(values), url

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BrokerConfig:
        values = dict(values)
        password_file = values.pop("password_file", None)
        if password_file and "password" not in values:
            try:
                values["password"] = Path(password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read password_file {password_file!r}: {exc.strerror}") from exc
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown MQTT settings {unknown}; allowed: {', '.join(sorted(allowed | {'password_file'}))}"
            )
        for name in ("keepalive",):
            if name in values:
                values[name] = _number(name, values[name], int)
        for name in ("connect_timeout", "reconnect_max_delay", "status_interval", "resend_acked_s"):
            if name in values:
                values[name] = _number(name, values[name], float)
        if "tls_insecure" in values and isinstance(values["tls_insecure"], str):
            values["tls_insecure"] = values["tls_insecure"].lower() in ("1", "true", "yes")
        if "protocol" in values:
            values["protocol"] = str(values["protocol"]).removeprefix("v")
            if values["protocol"] in ("3", "311", "3.1"):
                values["protocol"] = "3.1.1"
            if values["protocol"] in ("5.0",):
                values["protocol"] = "5"
        return cls(**values)


def _number(name: str, value: Any, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"MQTT setting {name}={value!r} is not a number") from exc


def _read_file(path: Path) -> tuple[dict[str, Any], str | None]:
    data = read_toml(path, "MQTT config file")
    values = data.get("mqtt", data)
    if not isinstance(values, dict):
        raise ConfigError(f"MQTT config file {path}: [mqtt] must be a table")
    values = dict(values)
    if "password" in values and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("MQTT config file %s holds a password and is readable by others; chmod 600 it", path)
    url = values.pop("url", None)
    return values, url
