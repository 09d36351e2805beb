"""A configured paho-mqtt 2.x client (protocol, credentials, TLS) and what a refused CONNACK means.

The one client factory: the publisher, the gateway's MQTT source (`subscribe_client`) and `edgernn listen`
all get the same TLS (client certificates included), credentials, protocol version and errors. Imports paho:
import this module only when MQTT is used.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge_runtime.publish.buffered_client import FAST_PATHS, BufferedClient
from edge_runtime.publish.config import BrokerAddress, BrokerConfig
from edgernn.errors import AuthError, ConfigError, EdgeRNNError, PublishError

# CONNACK reason codes that retrying cannot fix (MQTT 5 numbering; paho maps MQTT 3.1.1 return codes onto it).
AUTH_REFUSED = {134: "bad user name or password", 135: "not authorized", 140: "bad authentication method"}
CONFIG_REFUSED = {
    132: "unsupported protocol version (try protocol 3.1.1)",
    133: "client identifier not valid",
    138: "banned",
}

_paho_logger = logging.getLogger("edge_runtime.publish.paho")


def new_client(
    address: BrokerAddress, config: BrokerConfig, client_id: str, *, clean: bool = True, buffered: bool = False
) -> mqtt.Client:
    """A client with protocol, credentials and TLS set; callbacks and the will are the caller's.

    buffered=True: a `BufferedClient` when the installed paho allows it, for clients driven by `NetLoop`.
    clean=False asks the broker to keep the session (subscriptions and queued QoS 1 messages) across
    disconnects: MQTT 3.1.1 clean_session=False, MQTT 5 clean_start=False with a session expiry.
    """
    if config.tls_files and not address.tls:  # never send credentials in the clear by mistake
        raise ConfigError(f"TLS files are configured but {address} is plain TCP; use mqtts://{address.host}:PORT")
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


def subscribe_client(
    address: BrokerAddress,
    config: BrokerConfig,
    client_id: str,
    topics: list[str],
    on_message: Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None],
) -> mqtt.Client:
    """A client subscribed to `topics` (QoS 1, clean session), paho's network thread running (it reconnects and
    subscribes again after a drop). Returns once the broker confirmed the subscription, within
    `config.connect_timeout`: a refused login raises AuthError at once, a refused subscription or an
    unreachable broker PublishError, a TLS failure the publisher's TLS error."""
    done = threading.Event()
    fatal: list[EdgeRNNError] = []
    client = new_client(address, config, client_id)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            err = refused(reason, address, client_id, config)
            if err is not None:  # retrying cannot fix it: say so now, not after a timeout
                fatal.append(err)
                c.disconnect()
                done.set()
            return
        c.subscribe([(t, 1) for t in topics])

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
        bad = [t for t, r in zip(topics, reasons, strict=False) if r.is_failure]
        if bad and not done.is_set():
            user = f" as user {config.username!r}" if config.username else ""
            fatal.append(
                PublishError(f"broker {address} refused the subscription to {', '.join(bad)}{user}; check its ACL")
            )
        done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(address.host, address.port, **connect_kwargs(config))
    except ssl.SSLError as exc:
        raise tls_error(exc, address) from exc
    except OSError as exc:
        raise PublishError(f"cannot reach broker {address}: {exc.strerror or exc}") from exc
    client.loop_start()
    if not done.wait(config.connect_timeout) or fatal:
        client.disconnect()
        client.loop_stop()
        if fatal:
            raise fatal[0]
        raise PublishError(
            f"broker {address} did not confirm the subscription to {', '.join(topics)} within "
            f"{config.connect_timeout:g} s (connect_timeout)"
        )
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
