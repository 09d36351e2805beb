"""Fixtures for the MQTT tests: a test PKI (openssl) and a Mosquitto with TLS and a password file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TEST_USER, TEST_PASSWORD = "dev1", "correct-horse-battery"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", key.name, "-out", crt.name, "-days", "2", "-subj", f"/CN={name}", cwd=d)
    return key, crt


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_crt = _ca(d, "edgernn-test-ca")
    _, other_crt = _ca(d, "someone-else-ca")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", ca_crt.name, "-CAkey", ca_key.name, "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d,
    )  # fmt: skip
    return {"ca": ca_crt, "cert": d / "server.crt", "key": d / "server.key", "other_ca": other_crt}


@pytest.fixture
def secure_broker(mosquitto_factory, pki, tmp_path):
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed (apt-get install -y mosquitto)")
    passwd = tmp_path / "passwd"
    cmd = ["mosquitto_passwd", "-c", "-b", str(passwd), TEST_USER, TEST_PASSWORD]
    subprocess.run(cmd, check=True, capture_output=True)
    return mosquitto_factory(password_file=passwd, tls=(pki["ca"], pki["cert"], pki["key"]))
