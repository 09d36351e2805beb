"""Home Assistant core, headless, against a test Mosquitto: config dir, start, log, registries, stop.

It binds its HTTP server to 127.0.0.1 on a free port, loads the MQTT integration from a config entry (HA 2024.3
sets MQTT up only from one) and logs state changes (homeassistant.core at debug) so a test can read every
state an entity took.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from firmware_sim.broker import free_port

CONFIG = """\
homeassistant:
  name: edgernn-test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {http_port}
logger:
  default: info
  logs:
    homeassistant.core: debug
"""
# Environment notes HA logs at every start here, not about what it was sent.
EXPECTED_NOISE = (
    "Skipping pip installation of required modules",
    "Support for the running Python version 3.11",
)
_STATE = re.compile(r"state_changed\[L\]: entity_id=(\S+?), old_state=.*?new_state=<state \S+?=([^;>]*)")
_LEVEL = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")


@dataclass
class HomeAssistant:
    python: Path
    config_dir: Path
    broker_port: int
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_file = self.config_dir / "ha.log"
        storage = self.config_dir / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIG.format(http_port=free_port()))
        entry = {
            "entry_id": "01edgernntestmqtt", "version": 1, "minor_version": 1, "domain": "mqtt", "title": "MQTT",
            "data": {"broker": "127.0.0.1", "port": self.broker_port, "discovery": True},
            "options": {}, "pref_disable_new_entities": False, "pref_disable_polling": False, "source": "user",
            "unique_id": None, "disabled_by": None,
        }  # fmt: skip
        entries = {"version": 1, "minor_version": 2, "key": "core.config_entries", "data": {"entries": [entry]}}
        (storage / "core.config_entries").write_text(json.dumps(entries))

    def start(self, timeout: float = 120.0) -> None:
        hass = self.python.parent / "hass"
        cmd = [str(hass), "-c", str(self.config_dir), "--skip-pip", "--log-file", str(self.log_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not self.wait_for("Connected to MQTT server", timeout):
            self.stop()
            raise RuntimeError(f"Home Assistant did not connect to the broker in {timeout}s:\n{self.text()[-3000:]}")
        if not self.wait_for("Home Assistant initialized", timeout):
            self.stop()
            raise RuntimeError(f"Home Assistant did not finish starting in {timeout}s:\n{self.text()[-3000:]}")

    def text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: HA shuts down cleanly and writes its registries to .storage."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def problems(self) -> list[str]:
        """Every WARNING / ERROR line HA logged, less the environment notes above."""
        return [ln for ln in self.text().splitlines() if _LEVEL.match(ln) and not any(n in ln for n in EXPECTED_NOISE)]

    def states(self, entity_id: str) -> list[str]:
        """Each state the entity took, in order (from the state_changed events)."""
        return [m.group(2) for m in _STATE.finditer(self.text()) if m.group(1) == entity_id]

    def registry(self, name: str) -> list[dict]:
        """`core.device_registry` devices or `core.entity_registry` entities, as HA saved them at stop."""
        data = json.loads((self.config_dir / ".storage" / f"core.{name}_registry").read_text())["data"]
        return data["devices" if name == "device" else "entities"]
