"""Home Assistant MQTT discovery: retained config messages that make each stream's predictions sensors.

The publishing device (`edgernn_<device>`) gets a diagnostic "Outbox depth" sensor, so that HA has the
device before any stream names it as `via_device` (a gateway's streams then sit under it). Per stream, one
Home Assistant device (`edgernn_<stream>`) with, depending on the model's task:
    classify              sensor label (device_class enum, the manifest's labels as options), probability (%)
    generate              sensor label (the token), probability (%)
    anomaly               sensor anomaly score, binary_sensor anomaly (device_class problem)
    forecast              one sensor per forecast value ("<target> +k", unit and device class per target)
    every task            sensor latency (ms, diagnostic)
Entities read `<prefix>/<stream>/state` (the latest prediction at a bounded rate, ha_state.py) or, with
`ha_state_interval = 0`, every prediction; they carry seq, time, model, flags (and a forecast's interval)
as attributes and expire after `HaOptions.expire_after_for`. Config topics:
`<discovery_prefix>/<component>/<node>/<object>/config` (retained), one per entity: Home Assistant 2024.3,
the last release for Python 3.11 and the one tested here, has no device-based discovery
(`<discovery_prefix>/device/<id>/config` came in 2024.12). Availability follows `<prefix>/<device>/status`.
The publisher sends these at connect and again whenever Home Assistant announces `homeassistant/status` =
`online`; an empty retained payload on each config topic removes the entities (`removal_messages`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.publish.base import Message, prediction_topic, status_topic
from edge_runtime.publish.ha_options import HaOptions
from edge_runtime.publish.ha_state import StateThrottle, state_topic
from edge_runtime.stream.prediction import Publishable
from edgernn.errors import ConfigError

HA_STATUS_TOPIC_SUFFIX = "status"  # <discovery_prefix>/status: Home Assistant's birth and last will


def node_id(stream: str) -> str:
    """Home Assistant allows [a-zA-Z0-9_-] in node and object ids."""
    return "edgernn_" + re.sub(r"[^A-Za-z0-9_-]", "_", stream)


# Templates that never fail on a valid payload (docs/prediction.schema.json): a field left out (a held
# reading, the first reading after a reset) renders "" and HA keeps the entity's state (it ignores an empty
# state); a null (NaN from the model) renders "None" and HA shows "unknown". Nothing is logged either way.
def _number(field: str, scale: str = "", digits: int | None = None) -> str:
    value = f"value_json.{field}{scale}"
    if digits is not None:
        value = f"({value}) | round({digits})"
    return (
        f"{{% if value_json.{field} is not defined %}}{{% elif value_json.{field} is number %}}{{{{ {value} }}}}"
        "{% else %}None{% endif %}"
    )


def _attributes(extra: str = "") -> str:
    """json_attributes_template: what a user inspects beside the state (the interval of a forecast value)."""
    return (
        "{{ {'seq': value_json.seq, 'time': value_json.time, 'model': value_json.model, "
        f"'flags': value_json.flags{extra}}} | tojson }}}}"
    )


def _entities(manifest: Manifest, ha: HaOptions) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, object id, component-specific fields) for the model's task."""
    out = manifest.output
    ents: list[tuple[str, str, dict[str, Any]]] = []
    attrs = {"json_attributes_template": _attributes()}
    if out.task in ("classify", "generate"):
        # `this.state` keeps the last label if a payload ever came without one: a text sensor would take ""
        # as its state, and "" is no valid option of an enum
        label: dict[str, Any] = {
            "name": "Label",
            "icon": "mdi:tag",
            "value_template": "{{ value_json.label if value_json.label is defined else this.state }}",
            **attrs,
        }
        if out.task == "classify" and out.labels:
            # an enum: HA offers the classes in automations and draws a timeline
            label |= {"device_class": "enum", "options": list(out.labels)}
        ents.append(("sensor", "label", label))
        ents.append(
            (
                "sensor",
                "probability",
                {
                    "name": "Probability",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "suggested_display_precision": 1,
                    "value_template": _number("probability", " * 100", 2),
                },
            )
        )
    elif out.task == "anomaly":
        ents.append(
            (
                "sensor",
                "anomaly_score",
                {
                    "name": "Anomaly score",
                    "state_class": "measurement",
                    "suggested_display_precision": 2,
                    "value_template": _number("anomaly"),
                    **attrs,
                },
            )
        )
        ents.append(
            (
                "binary_sensor",
                "anomaly",
                {
                    "name": "Anomaly",
                    "device_class": "problem",
                    # no verdict (warm-up, a held reading): "" and HA keeps the last state, no flapping
                    "value_template": "{% if value_json.is_anomaly is defined %}"
                    "{{ 'ON' if value_json.is_anomaly else 'OFF' }}{% endif %}",
                },
            )
        )
    elif out.task == "forecast":
        targets = out.targets or [f"y{j}" for j in range(max(1, manifest.model.output_size // out.horizon))]
        for k in range(out.horizon):
            for j, target in enumerate(targets):
                idx = k * len(targets) + j  # y[k * n_targets + j] = target j at t+1+k
                fields: dict[str, Any] = {
                    "name": f"{target} +{k + 1}",
                    "state_class": "measurement",
                    # `values` is also a dict method in Jinja, hence the subscript; null renders "None"
                    "value_template": f"{{{{ value_json['values'][{idx}] }}}}",
                    "json_attributes_template": _attributes(
                        f", 'interval': value_json.interval[{idx}] if value_json.interval is defined else None"
                    ),
                }
                if target in ha.units:
                    fields["unit_of_measurement"] = ha.units[target]
                if target in ha.device_classes:
                    fields["device_class"] = ha.device_classes[target]
                ents.append(("sensor", f"{re.sub(r'[^A-Za-z0-9_-]', '_', target)}_{k + 1}", fields))
    ents.append(
        (
            "sensor",
            "latency",
            {
                "name": "Latency",
                "unit_of_measurement": "ms",
                "device_class": "duration",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "value_template": "{{ (value_json.latency_us / 1000) | round(3) }}",
            },
        )
    )
    return ents


def _origin() -> dict[str, str]:
    from edgernn import __version__

    return {"name": "edgernn", "sw_version": __version__}


def _availability(prefix: str, device: str) -> list[dict[str, str]]:
    return [{"topic": status_topic(prefix, device), "value_template": "{{ value_json.state }}"}]


def _config_message(discovery_prefix: str, component: str, node: str, obj: str, config: dict[str, Any]) -> Message:
    topic = f"{discovery_prefix}/{component}/{node}/{obj}/config"
    return Message(topic, json.dumps(config, separators=(",", ":")).encode(), qos=1, retain=True)


def device_messages(device: str, *, prefix: str = "edgernn", discovery_prefix: str = "homeassistant") -> list[Message]:
    """The publishing device itself (a gateway, or a single sensor's Pi): its outbox depth from the status.

    HA creates a device only with an entity, and links a stream's `via_device` only to a device it already
    has: so the gateway is announced, with this entity, before any of its streams."""
    from edgernn import __version__

    node = node_id(device)
    config = {
        "name": "Outbox depth",
        "unique_id": f"{node}_outbox_depth",
        "state_topic": status_topic(prefix, device),
        # the last will carries no outbox figures: "" keeps the state (availability shows offline anyway)
        "value_template": "{{ value_json.outbox.depth if value_json.outbox is defined else '' }}",
        "state_class": "measurement",
        "entity_category": "diagnostic",
        "icon": "mdi:tray-full",
        "availability": _availability(prefix, device),
        "device": {"identifiers": [node], "name": device, "manufacturer": "edgernn", "sw_version": __version__},
        "origin": _origin(),
        "qos": 1,
    }
    return [_config_message(discovery_prefix, "sensor", node, "outbox_depth", config)]


def discovery_messages(
    manifest: Manifest,
    device: str,
    stream: str,
    *,
    prefix: str = "edgernn",
    discovery_prefix: str = "homeassistant",
    units: Mapping[str, str] | None = None,
    ha: HaOptions | None = None,
) -> list[Message]:
    """Retained config messages for one stream published by `device` (a gateway publishes several streams).

    With `ha.state_interval` > 0 the entities read the rate-limited `<prefix>/<stream>/state` (ha_state.py);
    with 0, every prediction on `<prefix>/<stream>/prediction`."""
    from edgernn import __version__

    ha = ha or HaOptions(units=dict(units or {}))
    node = node_id(stream)
    m = manifest.model
    dev: dict[str, Any] = {
        "identifiers": [node],
        "name": stream,
        "manufacturer": "edgernn",
        "model": f"{manifest.output.task} {m.cell.upper()} {m.num_layers}x{m.hidden_size}",
        "sw_version": __version__,
    }
    if stream != device:
        dev["via_device"] = node_id(device)
    topic = state_topic(prefix, stream) if ha.state_interval > 0 else prediction_topic(prefix, stream)
    expire = ha.expire_after_for(manifest.input.sample_rate)
    msgs = []
    for component, obj, fields in _entities(manifest, ha):
        config = {
            **fields,
            "unique_id": f"{node}_{obj}",
            "state_topic": topic,
            "availability": _availability(prefix, device),
            "device": dev,
            "origin": _origin(),
            "qos": 1,
        }
        if "json_attributes_template" in config:
            config["json_attributes_topic"] = topic
        if expire and fields.get("entity_category") != "diagnostic":
            config["expire_after"] = expire
        msgs.append(_config_message(discovery_prefix, component, node, obj, config))
    return msgs


def removal_messages(messages: list[Message]) -> list[Message]:
    """Empty retained payloads on the same config topics: Home Assistant removes the entities."""
    return [Message(m.topic, b"", qos=1, retain=True) for m in messages]


class Announcer:
    """Which streams have been announced to Home Assistant, the messages to (re)announce them, and the
    rate-limited state HA reads (`state`, `due_states`)."""

    def __init__(
        self,
        manifest: Manifest,
        device: str,
        *,
        prefix: str,
        discovery_prefix: str = "homeassistant",
        units: Mapping[str, str] | None = None,
        ha: HaOptions | None = None,
    ) -> None:
        self.manifest, self.device, self.prefix = manifest, device, prefix
        self.discovery_prefix = discovery_prefix
        self.ha = ha or HaOptions(units=dict(units or {}))
        self.ha.check_targets(manifest.output.targets)
        self.throttle = StateThrottle(prefix, self.ha.state_interval) if self.ha.state_interval > 0 else None
        self.streams: set[str] = set()
        self._device_sent = False
        self._lock = threading.Lock()  # the caller announces new streams while paho's thread re-announces all

    @property
    def ha_status_topic(self) -> str:
        return f"{self.discovery_prefix}/{HA_STATUS_TOPIC_SUFFIX}"

    def messages(self, stream: str) -> list[Message]:
        return discovery_messages(
            self.manifest,
            self.device,
            stream,
            prefix=self.prefix,
            discovery_prefix=self.discovery_prefix,
            ha=self.ha,
        )

    def _device(self) -> list[Message]:
        return device_messages(self.device, prefix=self.prefix, discovery_prefix=self.discovery_prefix)

    def new_stream(self, stream: str) -> list[Message]:
        """Config messages for a stream not announced yet (after its device's, the first time); [] once it has been."""
        with self._lock:
            if stream in self.streams:
                return []
            self.streams.add(stream)
            first, self._device_sent = not self._device_sent, True
        return (self._device() if first else []) + self.messages(stream)

    def all(self, streams: Iterable[str] = ()) -> list[Message]:
        """Everything again, the device first (at connect, and when Home Assistant comes online)."""
        with self._lock:
            self.streams.update(streams)
            known = sorted(self.streams)
            self._device_sent = True
        return self._device() + [m for s in known for m in self.messages(s)]

    def removal(self) -> list[Message]:
        """Empty retained configs, and states: a retired device leaves nothing behind on the broker."""
        states = [Message(state_topic(self.prefix, s), b"", qos=1, retain=True) for s in sorted(self.streams)]
        return removal_messages(self.all()) + (states if self.throttle is not None else [])

    def state(self, pred: Publishable, seq: int) -> list[Message]:
        """The state message HA reads for this prediction, if it is sent now (none while the rate holds it)."""
        if self.throttle is None:
            return []
        msg = self.throttle.offer(pred, seq)
        return [msg] if msg is not None else []

    def due_states(self, *, all_pending: bool = False) -> list[Message]:
        """Held-back states whose time has come (every one at close)."""
        return self.throttle.due(all_pending=all_pending) if self.throttle is not None else []


def make_announcer(
    discovery: bool,
    manifest: Manifest | None,
    device: str,
    prefix: str,
    discovery_prefix: str = "homeassistant",
    units: Mapping[str, str] | None = None,
    ha: HaOptions | None = None,
) -> Announcer | None:
    if not discovery:
        return None
    if manifest is None:
        raise ConfigError(
            "Home Assistant discovery needs the bundle manifest (manifest=...) to know the model's outputs"
        )
    if units and ha is not None:
        ha = replace(ha, units={**ha.units, **units})
    return Announcer(manifest, device, prefix=prefix, discovery_prefix=discovery_prefix, units=units, ha=ha)
