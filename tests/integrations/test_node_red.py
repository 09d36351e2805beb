"""Node-RED 4 with the shipped flow (deploy/node-red/edgernn-flow.json) as a subscriber of a real Mosquitto:
every (stream, seq) reaches the flow's output once, duplicates dropped, a gap warned about, NaN as null."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import pytest

from edge_runtime.publish import open_publisher
from edge_runtime.stream.prediction import Prediction
from firmware_sim.broker import free_port
from tests.edge_runtime.publish.helpers import FAST, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]
FLOW = Path(__file__).resolve().parents[2] / "deploy" / "node-red" / "edgernn-flow.json"
SETTINGS = """module.exports = {{
  uiHost: "127.0.0.1", uiPort: {port}, httpAdminRoot: false, httpNodeRoot: false,
  flowFilePretty: true, credentialSecret: false,
  logging: {{ console: {{ level: "info" }} }}
}};
"""


def _flow(port: int, out: Path) -> list[dict]:
    """The shipped flow, pointed at the test broker, with a file node after the de-duplicating function."""
    nodes = json.loads(FLOW.read_text())
    for n in nodes:
        if n["type"] == "mqtt-broker":
            n["port"] = str(port)
        if n["type"] == "function":
            n["wires"][0].append("test.file")
    nodes.append(
        {"id": "test.file", "type": "file", "z": "edgernn.tab", "filename": str(out), "filenameType": "str",
         "appendNewline": True, "createDir": True, "overwriteFile": "false", "encoding": "none", "wires": [[]]}
    )  # fmt: skip
    return nodes


def test_node_red_gets_each_prediction_once(node_red, mosquitto, tmp_path):
    out = tmp_path / "predictions.jsonl"
    (tmp_path / "flows.json").write_text(json.dumps(_flow(mosquitto.port, out)))
    (tmp_path / "settings.js").write_text(SETTINGS.format(port=free_port()))
    log = (tmp_path / "node-red.log").open("w")
    proc = subprocess.Popen(
        [str(node_red), "--userDir", str(tmp_path), "--settings", str(tmp_path / "settings.js"), "flows.json"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    text = lambda: (tmp_path / "node-red.log").read_text()  # noqa: E731
    try:
        assert wait_until(lambda: "Connected to broker" in text(), 90), text()[-3000:]
        pub = open_publisher(mosquitto.url, "gw", config=FAST, state_dir=tmp_path / "state")
        for i in range(100):
            for stream in ("a", "b"):
                pub.publish(Prediction(0, time.time(), stream, [0.5, math.nan if i == 7 else 0.5], latency_us=1.0))
        assert pub.flush(20)
        pub.close()
        dup = json.dumps({"seq": 5, "time": time.time(), "stream": "a", "values": [], "latency_us": 1, "model": "",
                          "flags": []})  # fmt: skip  # a QoS 1 re-send
        gap = json.dumps({"seq": 110, "time": time.time(), "stream": "a", "values": [], "latency_us": 1, "model": "",
                          "flags": []})  # fmt: skip  # 101..109 lost
        for payload in (dup, gap):
            subprocess.run(
                ["mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", "edgernn/a/prediction", "-m", payload],
                check=True, timeout=10,
            )  # fmt: skip
        lines = lambda: out.read_text().splitlines() if out.exists() else []  # noqa: E731
        assert wait_until(lambda: len(lines()) >= 201, 30), (len(lines()), text()[-2000:])
        time.sleep(0.5)
        got = [json.loads(ln) for ln in lines()]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    keys = [(p["stream"], p["seq"]) for p in got]
    assert sorted(keys) == sorted([(s, q) for s in "ab" for q in range(1, 101)] + [("a", 110)])  # once each
    assert got[[k for k in keys].index(("a", 8))]["values"] == [0.5, None]  # NaN arrives as null
    assert "a: 9 predictions missing before seq 110" in text()
