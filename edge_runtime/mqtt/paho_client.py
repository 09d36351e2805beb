"""A configured paho-mqtt 2.x client (protocol, credentials, TLS) and what a refused CONNACK means.

Shared by the publisher and `edgernn listen`. Imports paho: import this module only when MQTT is used.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge_runtime.mqtt.buffered_client import FAST_PATHS, BufferedClient
from edge_runtime.mqtt.config import BrokerAddress, BrokerConfig
from edgernn.errors import AuthError, EdgeRNNError, PublishError

# CONNACK reason codes that retrying cannot fix (MQTT 5 numbering; paho maps MQTT 3.1.1 return codes onto it).
AUTH_REFUSED = {134: "bad user name or password", 135: "not authorized", 140: "bad authentication method"}
CONFIG_REFUSED = {
    132: "unsupported protocol version (try protocol 3.1.1)",
    133: "client identifier not valid",
    138: "banned",
}

_paho_logger = logging.getLogger("edge_runtime.mqtt.paho")


def new_client(
    address: BrokerAddress, config: BrokerConfig, client_id: str, *, clean: bool = True, buffered: bool = False
) -> mqtt.Client:
    """A client with protocol, credentials and TLS set; callbacks and the will are the caller's.

    buffered=True: a `BufferedClient` when the installed paho allows it, for clients driven by `NetLoop`.
    clean=False asks the broker to keep the session (subscriptions and queued QoS 1 messages) across
    disconnects: MQTT 3.1.1 clean_session=False, MQTT 5 clean_start=False with a session expiry.
    """
    v5 = config.protocol == "5"
    cls = BufferedClient if buffered and FAST_PATHS else mqtt.Client
    client = cls(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else clean,
    )
    if _paho_logger.isEnabledFor(logging.DEBUG):  # else paho formats a log line for every packet, for nothing
        client.on_log = _paho_log
    client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(config.reconnect_max_delay)))
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if address.tls:
        config.check_files()
        client.tls_set(
            ca_certs=config.ca_file, certfile=config.cert_file, keyfile=config.key_file, cert_reqs=ssl.CERT_REQUIRED
        )
        if config.tls_insecure:
            client.tls_insecure_set(True)
    return client


def connect_kwargs(config: BrokerConfig, *, clean: bool = True) -> dict[str, Any]:
    """Extra `connect()` arguments: MQTT 5 expresses a persistent session as clean_start + expiry."""
    if config.protocol != "5":
        return {"keepalive": config.keepalive}
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    kwargs: dict[str, Any] = {"keepalive": config.keepalive, "clean_start": clean}
    if not clean:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600
        kwargs["properties"] = props
    return kwargs


def refused(reason: ReasonCode, address: BrokerAddress, client_id: str, config: BrokerConfig) -> EdgeRNNError | None:
    """The error for a CONNACK that retrying cannot fix; None when retrying may help (server busy, ...)."""
    code = reason.value
    if code in AUTH_REFUSED:
        user = f" as user {config.username!r}" if config.username else " without a username"
        return AuthError(
            f"broker {address} refused the login of client {client_id!r}{user}: {AUTH_REFUSED[code]} "
            f"(reason code {code}); check the username and password "
            "(EDGERNN_MQTT_USERNAME / EDGERNN_MQTT_PASSWORD or the [mqtt] config file)"
        )
    if code in CONFIG_REFUSED:
        return PublishError(
            f"broker {address} refused client {client_id!r}: {CONFIG_REFUSED[code]} (reason code {code})"
        )
    return None


def tls_error(exc: ssl.SSLError, address: BrokerAddress) -> PublishError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = f"certificate verify failed: {exc.verify_message}"
    else:
        detail = exc.reason or str(exc)
    return PublishError(
        f"TLS with broker {address} failed: {detail}; check ca_file and that the URL's host is in the certificate"
    )


def _paho_log(client: mqtt.Client, userdata: Any, level: int, message: str) -> None:
    """paho's own log, at DEBUG: what matters reaches our callbacks, and paho otherwise reports a benign
    race at disconnect ("Client is not connected") as an error. paho never logs the password."""
    _paho_logger.debug(message)
