"""Home Assistant MQTT discovery: retained config messages that make each stream's predictions sensors.

Per stream, one Home Assistant device (`edgernn_<stream>`) with, depending on the model's task:
    classify / generate   sensor label, sensor probability (%)
    anomaly               sensor anomaly score, binary_sensor anomaly (device_class problem)
    forecast              one sensor per forecast value ("<target> +k", unit from `units`)
    every task            sensor latency (ms, diagnostic)
Config topics: `<discovery_prefix>/<component>/edgernn_<stream>/<object>/config` (retained). Availability
follows `<prefix>/<device>/status` (`{"state": "online"}`). The publisher sends these at connect and again
whenever Home Assistant announces `homeassistant/status` = `online`; an empty retained payload on each
config topic removes the entities (`removal_messages`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from edge_runtime.manifest import Manifest
from edge_runtime.mqtt.base import Message, prediction_topic, status_topic
from edgernn.errors import ConfigError

HA_STATUS_TOPIC_SUFFIX = "status"  # <discovery_prefix>/status: Home Assistant's birth and last will


def node_id(stream: str) -> str:
    """Home Assistant allows [a-zA-Z0-9_-] in node and object ids."""
    return "edgernn_" + re.sub(r"[^A-Za-z0-9_-]", "_", stream)


def _entities(manifest: Manifest, units: Mapping[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, object id, component-specific fields) for the model's task."""
    out = manifest.output
    ents: list[tuple[str, str, dict[str, Any]]] = []
    if out.task in ("classify", "generate"):
        ents.append(
            ("sensor", "label", {"name": "Label", "value_template": "{{ value_json.label }}", "icon": "mdi:tag"})
        )
        ents.append(
            (
                "sensor",
                "probability",
                {
                    "name": "Probability",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "suggested_display_precision": 1,
                    "value_template": "{{ (value_json.probability * 100) | round(2) }}",
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
                    # The first reading after a reset has no score: "None" makes the state unknown.
                    "value_template": "{{ value_json.anomaly if value_json.anomaly is defined else None }}",
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
                    "value_template": "{{ 'ON' if value_json.is_anomaly else 'OFF' }}",
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
                    # `values` is also a dict method in Jinja, hence the subscript.
                    "value_template": f"{{{{ value_json['values'][{idx}] }}}}",
                }
                if target in units:
                    fields["unit_of_measurement"] = units[target]
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


def discovery_messages(
    manifest: Manifest,
    device: str,
    stream: str,
    *,
    prefix: str = "edgernn",
    discovery_prefix: str = "homeassistant",
    units: Mapping[str, str] | None = None,
) -> list[Message]:
    """Retained config messages for one stream published by `device` (a gateway publishes several streams)."""
    from edgernn import __version__

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
    msgs = []
    for component, obj, fields in _entities(manifest, units or {}):
        config = {
            **fields,
            "unique_id": f"{node}_{obj}",
            "state_topic": prediction_topic(prefix, stream),
            "availability": [{"topic": status_topic(prefix, device), "value_template": "{{ value_json.state }}"}],
            "device": dev,
            "origin": {"name": "edgernn", "sw_version": __version__},
            "qos": 1,
        }
        topic = f"{discovery_prefix}/{component}/{node}/{obj}/config"
        msgs.append(Message(topic, json.dumps(config, separators=(",", ":")).encode(), qos=1, retain=True))
    return msgs


def removal_messages(messages: list[Message]) -> list[Message]:
    """Empty retained payloads on the same config topics: Home Assistant removes the entities."""
    return [Message(m.topic, b"", qos=1, retain=True) for m in messages]


class Announcer:
    """Which streams have been announced to Home Assistant, and the messages to (re)announce them."""

    def __init__(
        self,
        manifest: Manifest,
        device: str,
        *,
        prefix: str,
        discovery_prefix: str = "homeassistant",
        units: Mapping[str, str] | None = None,
    ) -> None:
        self.manifest, self.device, self.prefix = manifest, device, prefix
        self.discovery_prefix = discovery_prefix
        self.units = dict(units or {})
        self.streams: set[str] = set()
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
            units=self.units,
        )

    def new_stream(self, stream: str) -> list[Message]:
        """Config messages for a stream not announced yet; [] once it has been."""
        with self._lock:
            if stream in self.streams:
                return []
            self.streams.add(stream)
        return self.messages(stream)

    def all(self, streams: Iterable[str] = ()) -> list[Message]:
        """Everything again (at connect, and when Home Assistant comes online)."""
        with self._lock:
            self.streams.update(streams)
            known = sorted(self.streams)
        return [m for s in known for m in self.messages(s)]

    def removal(self) -> list[Message]:
        return removal_messages(self.all())


def make_announcer(
    discovery: bool,
    manifest: Manifest | None,
    device: str,
    prefix: str,
    discovery_prefix: str = "homeassistant",
    units: Mapping[str, str] | None = None,
) -> Announcer | None:
    if not discovery:
        return None
    if manifest is None:
        raise ConfigError(
            "Home Assistant discovery needs the bundle manifest (manifest=...) to know the model's outputs"
        )
    return Announcer(manifest, device, prefix=prefix, discovery_prefix=discovery_prefix, units=units)
