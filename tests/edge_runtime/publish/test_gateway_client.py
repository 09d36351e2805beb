"""The gateway's MQTT source uses the publisher's client factory (issue 14 item 14): the same TLS with client
certificates, credentials, protocol and errors; a refused login is an AuthError at once, and TLS settings
with a plain mqtt:// URL are refused instead of sending credentials in the clear. Real Mosquitto."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import replace

import pytest

from edge_runtime.device.sources import MqttSource, Stopper
from edge_runtime.publish import BrokerConfig
from edgernn.errors import AuthError, ConfigError
from tests.edge_runtime.publish.conftest import TEST_PASSWORD, TEST_USER, _openssl
from tests.edge_runtime.publish.helpers import FAST

pytestmark = pytest.mark.broker


def _source(url: str, cfg: BrokerConfig) -> MqttSource:
    return MqttSource(url, ["ax"], prefix="edgernn", stopper=Stopper(), config=cfg)


def test_a_refused_login_is_an_auth_error_at_once(secure_broker, pki):
    cfg = replace(FAST, username=TEST_USER, password="wrong-guess", ca_file=str(pki["ca"]))
    t0 = time.monotonic()
    with pytest.raises(AuthError, match=r"refused the login of client .* as user 'dev1': not authorized"):
        _source(secure_broker.url, cfg)
    assert time.monotonic() - t0 < 5  # before: a "subscription timeout" after 10 s


def test_tls_settings_with_a_plain_url_are_refused(mosquitto, pki):
    cfg = replace(FAST, username=TEST_USER, password=TEST_PASSWORD, ca_file=str(pki["ca"]))
    with pytest.raises(ConfigError, match=r"TLS files are configured but mqtt://127\.0\.0\.1:\d+ is plain TCP"):
        _source(mosquitto.url, cfg)


def test_client_certificates_reach_a_broker_that_requires_them(mosquitto_factory, pki, tmp_path):
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub not installed")
    d = pki["ca"].parent
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             str(tmp_path / "gw.key"), "-out", str(tmp_path / "gw.csr"), "-subj", "/CN=gateway", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", str(tmp_path / "gw.csr"), "-CA", pki["ca"].name, "-CAkey", "edgernn-test-ca.key",
             "-CAcreateserial", "-out", str(tmp_path / "gw.crt"), "-days", "2", cwd=d)  # fmt: skip
    broker = mosquitto_factory(tls=(pki["ca"], pki["cert"], pki["key"]), extra=["require_certificate true"])
    cfg = replace(FAST, ca_file=str(pki["ca"]), cert_file=str(tmp_path / "gw.crt"), key_file=str(tmp_path / "gw.key"))
    source = _source(broker.url, cfg)
    tls = ["--cafile", str(pki["ca"]), "--cert", str(tmp_path / "gw.crt"), "--key", str(tmp_path / "gw.key")]
    pub = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", *tls]
    subprocess.run([*pub, "-t", "edgernn/s7/reading", "-m", '{"ax": 1.5}'], check=True, timeout=30)
    batch = next(iter(source))
    assert [(r.stream, r.reading) for r in batch] == [("s7", {"ax": 1.5})]
    source.client.disconnect()
    source.client.loop_stop()
