"""Every settings file (device config, MQTT config, scenario) is read by one reader: a missing, unreadable or
broken file is one ConfigError naming the kind of file, the file and the cause."""

from __future__ import annotations

import pytest

from edge_runtime.device.settings import load_config
from edge_runtime.publish.config import BrokerConfig
from edgernn.errors import ConfigError
from firmware_sim.scenario import Scenario


@pytest.mark.parametrize(
    ("read", "what"),
    [
        (load_config, "device config"),
        (lambda p: BrokerConfig.load(p, env={}), "MQTT config file"),
        (Scenario.from_toml, "scenario file"),
    ],
)
def test_missing_broken_and_binary_files_are_one_line_each(tmp_path, read, what):
    with pytest.raises(ConfigError, match=rf"^{what} '.*nope.toml' does not exist$"):
        read(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("key = [1, 2\n")
    with pytest.raises(ConfigError, match=rf"^{what} .*broken.toml is not valid TOML: "):
        read(broken)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"key = '\xff'\n")
    with pytest.raises(ConfigError, match=rf"^{what} .*binary.toml is not UTF-8 text"):
        read(binary)
