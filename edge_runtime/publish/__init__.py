"""Every prediction to an MQTT broker, durably: outbox on disk, sequence numbers, status, HA discovery.

    from edge_runtime.publish import open_publisher
    with open_publisher("mqtt://127.0.0.1:1883", "dev1", state_dir="state/dev1") as pub:
        seq = pub.publish(pred)          # sets pred.seq; delivery continues in the background
        pub.status(predictor.counters)   # retained <prefix>/dev1/status
        pub.flush(10.0)                  # True once the broker acknowledged everything

`open_publisher(None, ...)` returns a `MemoryPublisher` (no broker). Importing this package does not import
paho-mqtt; only opening an MQTT publisher does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.publish.base import DEFAULT_PREFIX, Message, Publisher, check_name, check_prefix
from edge_runtime.publish.config import BrokerAddress, BrokerConfig, parse_broker_url
from edge_runtime.publish.discovery import make_announcer
from edge_runtime.publish.ha_options import HaOptions
from edge_runtime.publish.memory import MemoryPublisher
from edge_runtime.publish.outbox import OUTBOX_FILE, Outbox, OutboxConfig
from edgernn.errors import ConfigError, PublishError

__all__ = [
    "BrokerAddress",
    "BrokerConfig",
    "HaOptions",
    "MemoryPublisher",
    "Message",
    "Outbox",
    "OutboxConfig",
    "Publisher",
    "open_publisher",
    "parse_broker_url",
]


def open_publisher(
    url: str | None,
    device: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    state_dir: str | Path | None = None,
    config: BrokerConfig | None = None,
    discovery: bool = False,
    manifest: Manifest | None = None,
    outbox: OutboxConfig | None = None,
    units: Mapping[str, str] | None = None,
    window: int = 1000,
    ha: HaOptions | None = None,
) -> Publisher:
    """A connected publisher for `device`; its outbox is `<state_dir>/outbox.sqlite` (in memory without one).

    url: `mqtt://host[:1883]` or `mqtts://host[:8883]`; None gives a MemoryPublisher.
    config: credentials, TLS, protocol, timings; None reads $EDGERNN_MQTT_CONFIG and EDGERNN_MQTT_* variables.
    discovery: announce the model's outputs to Home Assistant (needs `manifest`; `units` per forecast target).
    ha: units, device classes, the rate of the state HA reads and its expiry (`HaOptions`; with discovery).
    window: predictions handed to the client before their acknowledgement (paho holds these in memory).
    Raises AuthError when the broker refuses the login; an unreachable broker is not an error.
    """
    check_name("device", device)
    check_prefix(prefix)
    if url is None:
        return MemoryPublisher(
            device,
            prefix=prefix,
            state_dir=state_dir,
            outbox=outbox,
            discovery=discovery,
            manifest=manifest,
            units=units,
            ha=ha,
        )
    if not 1 <= window <= 20_000:
        raise ConfigError(f"window={window}; allowed: 1 to 20000 unacknowledged messages")
    address, user, password = parse_broker_url(url)
    config = (config if config is not None else BrokerConfig.load()[0]).with_url_credentials(user, password)
    if config.tls_files and not address.tls:
        raise ConfigError(f"TLS files are configured but {address} is plain TCP; use mqtts://{address.host}:PORT")
    announcer = make_announcer(discovery, manifest, device, prefix, config.discovery_prefix, units, ha)
    try:
        from edge_runtime.publish.paho_publisher import MqttPublisher
    except ImportError as exc:
        raise PublishError("MQTT needs paho-mqtt 2.x: pip install 'edgernn[device]'") from exc
    box = Outbox(Path(state_dir) / OUTBOX_FILE if state_dir is not None else None, outbox)
    if state_dir is None:
        logging.getLogger("edge_runtime.publish").warning(
            "no state directory: the outbox of %s is in memory, so unacknowledged predictions are lost if the "
            "process stops, and seq restarts at 1; give --state-dir",
            device,
        )
    try:
        pub = MqttPublisher(
            address, device, prefix=prefix, config=config, outbox=box, announcer=announcer, window=window
        )
    except BaseException:
        box.close()
        raise
    return pub.start()
