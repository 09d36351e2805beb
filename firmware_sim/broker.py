"""The broker side of a simulation: a Mosquitto the simulator starts (and stops, for outages), and a TCP
proxy between the devices and a broker it does not own (to cut connections or slow the network).

    BrokerControl    what an outage needs: `url`, `stop()`, `start()`; tests can pass their own
    SpawnedMosquitto `broker url = "spawn"`: a Mosquitto on a free 127.0.0.1 port, persistence on, so that
                     a stop (SIGTERM: the broker saves its sessions) and start lose nothing it acknowledged
    NetworkProxy     `python -m firmware_sim.netproxy` in its own process: `cut()` closes every device
                     connection and refuses new ones until `restore()`; `delay(ms)` holds every byte
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from edgernn.errors import ConfigError, PublishError

INSTALL_HINT = "install Mosquitto (Debian/Ubuntu: apt-get install -y mosquitto)"


class BrokerControl(Protocol):
    """A broker the simulation may stop and start for a `broker-outage` fault."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float, *, up: bool = True) -> bool:
    """True once host:port accepts connections (up) or refuses them (not up), within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                if up:
                    return True
        except OSError:
            if not up:
                return True
        time.sleep(0.02)
    return False


def host_port(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883)


class SpawnedMosquitto:
    """A Mosquitto for one simulation run, in its own directory; `stop()` is SIGTERM (state saved)."""

    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
        )
        if binary is None:
            raise ConfigError(f'broker url "spawn" needs the mosquitto binary, which is not installed: {INSTALL_HINT}')
        self.binary = binary
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="edgernn-sim-broker-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data}/",
            "autosave_interval 60",  # plus a full save on SIGTERM, which is how an outage stops it
            "max_queued_messages 0",  # the counting subscriber must never be dropped to, however far behind
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else Mosquitto drops to `mosquitto`, which cannot write our directory
        path = self.root / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = open(self.root / "mosquitto.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self._config())], stdout=log, stderr=log, start_new_session=True
            )  # its own session: Ctrl-C stops the simulation, which then stops the broker
        finally:
            log.close()
        if not wait_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise PublishError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout} s; see {self.root}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        wait_port("127.0.0.1", self.port, 5.0, up=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class NetworkProxy:
    """A TCP proxy process between devices and a broker: cut, restore, and delay the device side."""

    def __init__(self, target_url: str) -> None:
        self.target = host_port(target_url)
        self.scheme = urlparse(target_url).scheme or "mqtt"
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> NetworkProxy:
        host, port = self.target
        cmd = [sys.executable, "-m", "firmware_sim.netproxy", "--listen", str(self.port), "--to", f"{host}:{port}"]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True
        )
        reply = self._command(None)
        if not reply.get("ready"):
            raise PublishError(f"the network proxy did not start: {reply}")
        return self

    def _command(self, cmd: str | None) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            if cmd is not None:
                self.proc.stdin.write(cmd + "\n")
                self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        return dict(json.loads(line)) if line else {"error": "the proxy exited"}

    def cut(self) -> None:
        self._command("cut")

    def restore(self) -> None:
        self._command("restore")

    def delay(self, ms: float) -> None:
        self._command(f"delay {ms}")

    def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._command("quit")
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                proc.kill()
                proc.wait(timeout=5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class ProxyOutage:
    """BrokerControl for a broker we do not own: the outage cuts the devices' connections at the proxy."""

    def __init__(self, proxy: NetworkProxy) -> None:
        self.proxy = proxy

    @property
    def url(self) -> str:
        return self.proxy.url

    def stop(self) -> None:
        self.proxy.cut()

    def start(self) -> None:
        self.proxy.restore()
