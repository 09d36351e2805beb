"""Broker URLs and credentials: parsed strictly, taken from file or environment, never shown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge_runtime.publish import BrokerConfig, open_publisher, parse_broker_url
from edgernn.errors import ConfigError


def test_urls_and_default_ports():
    assert str(parse_broker_url("mqtt://broker.local")[0]) == "mqtt://broker.local:1883"
    assert str(parse_broker_url("mqtts://broker.local")[0]) == "mqtts://broker.local:8883"
    addr, user, password = parse_broker_url("mqtt://dev1:s3cret@10.0.0.5:1884")
    assert (addr.host, addr.port, addr.tls, user, password) == ("10.0.0.5", 1884, False, "dev1", "s3cret")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x:1883", "unsupported broker URL scheme 'http'"),
        ("mqtt://x:1883/topic", "has a path or query"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://u:hunter2@x:99999", "invalid broker URL"),
    ],
)
def test_bad_urls_name_the_problem_and_hide_the_password(url, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_broker_url(url)
    assert "hunter2" not in str(err.value)


def test_environment_overrides_the_file_and_password_never_shows(tmp_path):
    cfg_file = tmp_path / "edgernn.toml"
    cfg_file.write_text('[mqtt]\nurl = "mqtts://pi:8883"\nusername = "fileuser"\nprotocol = "5"\nkeepalive = 20\n')
    cfg_file.chmod(0o600)
    secret = tmp_path / "pass"
    secret.write_text("hunter2\n")
    env = {
        "EDGERNN_MQTT_CONFIG": str(cfg_file),
        "EDGERNN_MQTT_USERNAME": "envuser",
        "EDGERNN_MQTT_PASSWORD_FILE": str(secret),
    }
    cfg, url = BrokerConfig.load(env=env)
    assert (cfg.username, cfg.password, cfg.protocol, cfg.keepalive, url) == (
        "envuser",
        "hunter2",
        "5",
        20,
        "mqtts://pi:8883",
    )
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)


def test_unknown_settings_and_bad_values_are_named(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[mqtt]\nusername = 'a'\npasword = 'typo'\n")
    with pytest.raises(ConfigError, match=r"unknown MQTT settings \['pasword'\]"):
        BrokerConfig.load(f, env={})
    with pytest.raises(ConfigError, match=r"unsupported MQTT protocol '4'; allowed: 3\.1\.1, 5"):
        BrokerConfig(protocol="4")
    with pytest.raises(ConfigError, match="password was given without a username"):
        BrokerConfig(password="x")


def test_tls_files_with_a_plain_url_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="plain TCP; use mqtts://"):
        open_publisher("mqtt://127.0.0.1:1", "dev1", config=BrokerConfig(ca_file=str(tmp_path / "ca.pem")))
    with pytest.raises(ConfigError, match=r"ca_file .* does not exist"):
        open_publisher("mqtts://127.0.0.1:1", "dev1", config=BrokerConfig(ca_file=str(tmp_path / "ca.pem")))


def test_importing_the_package_does_not_import_paho():
    code = (
        "import sys, edge_runtime.publish, edge_runtime.cli.listen, edge_runtime.publish.embedded\n"
        "print(any(m.startswith(('paho', 'amqtt')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=os.getcwd())
    assert out.stdout.strip() == "False"


def test_paho_packet_log_only_when_debug_is_on(caplog):
    """paho formats a line for every packet it sends or reads; that costs CPU at fleet scale, so only on DEBUG."""
    import logging

    from edge_runtime.publish.paho_client import new_client

    address = parse_broker_url("mqtt://127.0.0.1:1883")[0]
    assert new_client(address, BrokerConfig(), "quiet").on_log is None
    with caplog.at_level(logging.DEBUG, logger="edge_runtime.publish.paho"):
        client = new_client(address, BrokerConfig(), "chatty")
        assert client.on_log is not None
        client.on_log(client, None, 16, "Sending PUBLISH (d0, q1, r0, m1)")  # what paho calls per packet
    assert [r.message for r in caplog.records] == ["Sending PUBLISH (d0, q1, r0, m1)"]
