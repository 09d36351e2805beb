"""docs/integrations.md's ready-to-paste blocks: each one parses, and says what our payloads and settings are."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

from edge_runtime.device.settings import resolve
from edge_runtime.publish import HaOptions

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "integrations.md").read_text()
SCHEMA = json.loads((ROOT / "docs" / "prediction.schema.json").read_text())


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def test_device_config_block_is_accepted(tmp_path):
    device, _ = _blocks("toml")
    cfg = tmp_path / "device.toml"
    cfg.write_text('bundle = "/opt/edgernn/cellar"\n' + device)
    s = resolve({}, str(cfg))
    assert s.discovery and s.ha_options() == HaOptions(
        {"temp": "°C", "hum": "%"}, {"temp": "temperature", "hum": "humidity"}, 1.0
    )


def test_telegraf_block_reads_our_payload_as_it_is():
    _, telegraf = _blocks("toml")
    c = tomllib.loads(telegraf)["inputs"]["mqtt_consumer"][0]
    props = SCHEMA["properties"]
    assert c["topics"] == ["edgernn/+/prediction"] and c["qos"] == 1 and c["persistent_session"]
    # the time key is the required epoch-seconds number: json_time_format "unix" reads it as such
    assert c["json_time_key"] in SCHEMA["required"] and props[c["json_time_key"]]["type"] == "number"
    assert "Unix epoch" in props[c["json_time_key"]]["description"] and c["json_time_format"] == "unix"
    for key in c["tag_keys"] + c["json_string_fields"]:
        assert props[key]["type"] == "string", key


def test_home_assistant_yaml_block_passes_home_assistants_schema(ha_python):
    (block,) = _blocks("yaml")
    out = subprocess.run(
        [str(ha_python), str(Path(__file__).with_name("ha_validate.py")), "yaml"],
        input=block, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [None, None]
