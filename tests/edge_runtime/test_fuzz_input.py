"""Seeded fuzz (issue 14): 10,000 hostile readings through stdin, CSV and the gateway's MQTT source on a real
Mosquitto. Each line carries exactly one hostile thing, so every reason's count is known in advance; the run
must end with exit 0, no traceback, and readings = predictions + skipped, each skip counted by its reason."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.device.sources import MAX_LINE
from tests.edge_runtime.conftest import FEATURES, OFFSET, make_model, numpy_bundle

ROOT = Path(__file__).resolve().parents[2]
SEED = 14
STREAMS = [f"s{i}" for i in range(5)]
BAD_NAMES = [" lead", "trail ", "x" * 200, "ü" * 129]  # each publishable as one topic level; refused as a name
T0 = time.time() - 3600.0  # readings' own times: an hour ago, 0.01 s apart
UNTIMED = "untimed"  # a case's reason before `_untimed_resolved`: no_time or none, by what its stream had before


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return numpy_bundle(tmp_path_factory.mktemp("fuzz") / "b", make_model())


def _good(rng: np.random.Generator) -> dict[str, float]:
    return {f: round(float(v), 4) for f, v in zip(FEATURES, rng.normal(OFFSET, 0.5), strict=True)}


def _json_case(rng: np.random.Generator, i: int, *, gateway: bool) -> tuple[str, bytes, str]:
    """(stream the line is sent as, the line, the one reason it must be counted under; "" for none)."""
    stream = STREAMS[int(rng.integers(len(STREAMS)))]
    body: dict = {"t": T0 + 0.01 * i, **_good(rng)}
    if not gateway:  # in a gateway the topic names the stream
        body["stream"] = stream
    feature = FEATURES[int(rng.integers(len(FEATURES)))]
    kind = int(rng.integers(12))
    if kind == 0:
        return stream, json.dumps(body).encode(), ""
    if kind == 1:
        del body[feature]
        return stream, json.dumps(body).encode(), "missing"
    if kind == 2:
        body[feature] = ["n/a", None, [1, 2], {"a": 1}, "\ud800", "yes"][int(rng.integers(6))]
        return stream, json.dumps(body).encode(), "non_number"
    if kind == 3:
        value = ["1e40", "-1e40", "1e400", "1" + "0" * 400, '"inf"', '"NaN"'][int(rng.integers(6))]
        return stream, _raw(body, feature, value), "non_finite"
    if kind == 4:
        body[feature] = 1e6  # far out of the training range: kept, flagged
        return stream, json.dumps(body).encode(), "out_of_range"
    if kind == 5:
        extra = ["\udc80", "colour", "x" * 5000][int(rng.integers(3))]
        return stream, json.dumps({**body, extra: 1}).encode(), "extra"
    if kind == 6:
        t = ['"inf"', '"nan"', "1e20", "1" + "0" * 400, '"9999-12-31T00:00:00"', '"noon"', "[1]", "Infinity"]
        return stream, _raw(body, "t", t[int(rng.integers(len(t)))]), "bad_time"
    if kind == 7:
        if gateway:  # the topic names the stream: a payload naming another is refused
            other = ["a/b", "x#1", "", "victim"][int(rng.integers(4))]
            return stream, json.dumps({**body, "stream": other}).encode(), "stream_mismatch"
        hostile = ["a/b", "x#1", "", "z" * 1000][int(rng.integers(4))]
        return stream, json.dumps({**body, "stream": hostile}).encode(), "bad_stream"
    if kind == 8:
        name = BAD_NAMES[int(rng.integers(len(BAD_NAMES)))]
        if gateway:  # the topic's level is the bad name
            return name, json.dumps(body).encode(), "bad_stream"
        return stream, json.dumps({**body, "stream": name}).encode(), "bad_stream"
    if kind == 9:
        junk = [b"[" * 5000, b"{" * 3, b'"just text"', b"42", b"null", b"\xff\xfe\xfd", b'{"ax": 1', b"1,2,3"]
        return stream, junk[int(rng.integers(len(junk)))], "unparsable"
    if kind == 10:
        if i % 40 == 0:  # a few lines over the bound
            return stream, b'{"ax": "' + b"9" * (MAX_LINE + 1000) + b'"}', "unparsable"
        values = [body.pop(f) for f in FEATURES]
        if i % 2:  # five values for four, with a time
            return stream, json.dumps({**body, "reading": [*values, 0.0]}).encode(), "extra"
        # a bare list has no time and names no stream: stdin's default one (--stream s0), else the topic's
        return ("s0" if not gateway else stream), json.dumps(values).encode(), UNTIMED
    wrapped = {k: body.pop(k) for k in ("t", "stream") if k in body} | {"reading": body}
    return stream, json.dumps(wrapped).encode(), ""


def _untimed_resolved(cases: list[tuple[str, bytes, str]]) -> list[tuple[str, bytes, str]]:
    """A reading without a time in a stream whose readings carry one is `no_time` (the device's clock is
    not compared with the sensor's, an hour apart here); a stream's first readings without one are plain."""
    timed: set[str] = set()  # streams that have had a reading with a usable time of its own
    out = []
    for stream, line, reason in cases:
        if reason == UNTIMED:
            reason = "no_time" if stream in timed else ""
        elif reason in ("", "missing", "non_number", "non_finite", "out_of_range", "extra"):
            timed.add(stream)
        out.append((stream, line, reason))
    return out


def _raw(body: dict, key: str, raw: str) -> bytes:
    """`body` as JSON with `key`'s value written as the raw JSON text `raw` (numbers json.dumps cannot write)."""
    return json.dumps({**body, key: "@@"}).replace('"@@"', raw, 1).encode()


def _summary(err: str) -> tuple[dict[str, int], Counter[str]]:
    head = re.search(r"edgernn run: (\d+) readings, (\d+) predictions(?:, (\d+) skipped)?", err)
    bad = re.search(r"bad readings: (.*)", err)
    assert head and bad, err
    counts = {"readings": int(head[1]), "predictions": int(head[2]), "skipped": int(head[3] or 0)}
    reasons: Counter[str] = Counter()
    if bad[1].strip() != "none":
        for part in bad[1].split(", "):
            name, _, n = part.rpartition(" ")
            reasons[name] = int(n)
    return counts, reasons


def _check(counts: dict[str, int], reasons: Counter[str], expected: Counter[str], sent: int, err: str) -> None:
    print(f"\nfuzz: sent {sent}, {counts}, bad {dict(sorted(reasons.items()))}")  # the figures, with -s
    assert "Traceback" not in err, err
    refused_at_source = reasons["unparsable"] + reasons["stream_mismatch"]
    assert counts["readings"] + refused_at_source == sent, (counts, reasons)
    assert counts["readings"] == counts["predictions"] + counts["skipped"], counts
    assert counts["skipped"] == reasons["bad_time"] + reasons["bad_stream"], (counts, reasons)
    for reason, n in expected.items():
        if reason:
            assert reasons[reason] == n, (reason, reasons, expected)
    assert set(reasons) <= set(expected), (reasons, expected)


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "edgernn", *args]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def test_fuzz_stdin(bundle):
    rng = np.random.default_rng(SEED)
    cases = _untimed_resolved([_json_case(rng, i, gateway=False) for i in range(4000)])
    lines = [line for _, line, _ in cases]
    proc = _spawn(["run", str(bundle), "--source", "stdin", "--stream", "s0", "--backend", "numpy", "--quiet"])
    _, err_bytes = proc.communicate(b"\n".join(lines) + b"\n", timeout=120)
    err = err_bytes.decode(errors="replace")
    assert proc.returncode == 0, err
    counts, reasons = _summary(err)
    expected = Counter(reason for _, _, reason in cases)
    _check(counts, reasons, expected, len(cases), err)


def _csv_case(rng: np.random.Generator, i: int) -> tuple[bytes, str]:
    stream = STREAMS[int(rng.integers(len(STREAMS)))]
    t = f"{T0 + 0.01 * i:.2f}"
    cells = [f"{v:.4f}" for v in _good(rng).values()]
    k = int(rng.integers(len(cells)))
    kind = int(rng.integers(9))
    reason = ""
    if kind == 1:
        cells[k], reason = "", "missing"
    elif kind == 2:
        cells[k], reason = ["n/a", "\xff", '"1,5"', "1e3x"][int(rng.integers(4))], "non_number"
    elif kind == 3:
        cells[k], reason = ["1e40", "9" * 400, "inf", "-nan"][int(rng.integers(4))], "non_finite"
    elif kind == 4:
        t, reason = ["inf", "nan", "1e20", "9999-12-31T00:00:00", "noon", "9" * 400][int(rng.integers(6))], "bad_time"
    elif kind == 5:
        stream, reason = ["a/b", " lead", "", "x" * 200, "x#1"][int(rng.integers(5))], "bad_stream"
    elif kind == 6:
        cells[k], reason = ['"open', '"a"b', "z" * (MAX_LINE + 10)][int(rng.integers(3))], "unparsable"
    elif kind == 7:
        cells[k], reason = "1e6", "out_of_range"
    line = ",".join([t, stream, *cells]).encode("utf-8", "surrogateescape")
    return line.replace("\xff".encode(), b"\xff"), reason


def test_fuzz_csv(bundle, tmp_path):
    rng = np.random.default_rng(SEED + 1)
    cases = [_csv_case(rng, i) for i in range(3000)]
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"t,stream," + ",".join(FEATURES).encode() + b"\n" + b"\n".join(c for c, _ in cases) + b"\n")
    proc = _spawn(["run", str(bundle), "--source", f"csv:{path}", "--backend", "numpy", "--quiet"])
    _, err_bytes = proc.communicate(timeout=120)
    err = err_bytes.decode(errors="replace")
    assert proc.returncode == 0, err
    counts, reasons = _summary(err)
    _check(counts, reasons, Counter(reason for _, reason in cases), len(cases), err)


@pytest.mark.broker
def test_fuzz_gateway_on_mosquitto(bundle, tmp_path, mosquitto):
    import paho.mqtt.client as mqtt

    rng = np.random.default_rng(SEED + 2)
    cases = _untimed_resolved([_json_case(rng, i, gateway=True) for i in range(3000)])
    args = ["run", str(bundle), "--source", f"mqtt:{mosquitto.url}", "--mqtt", mosquitto.url, "--device", "gw"]
    proc = _spawn([*args, "--backend", "numpy", "--state-dir", str(tmp_path / "state"), "--quiet"])
    online, ended = threading.Event(), threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == "edgernn/gw/status" and json.loads(msg.payload).get("state") == "online":
            online.set()
        if msg.topic == "edgernn/zz-end/prediction":
            ended.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(200)
    client.on_message = on_message
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe([("edgernn/gw/status", 1), ("edgernn/zz-end/prediction", 1)])
    client.loop_start()
    try:
        assert online.wait(timeout=30), "the gateway never said online"
        # one subscription, one queue: when the last reading's prediction arrives, every earlier one was read
        cases.append(("zz-end", json.dumps({"t": time.time(), **_good(rng)}).encode(), ""))
        infos = [client.publish(f"edgernn/{stream}/reading", line, qos=1) for stream, line, _ in cases]
        for info in infos:
            info.wait_for_publish(30)
        assert ended.wait(timeout=60), "the last reading was never predicted"
    finally:
        client.loop_stop()
        client.disconnect()
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = proc.communicate(timeout=60)
    err = err_bytes.decode(errors="replace")
    assert proc.returncode == 0, err
    counts, reasons = _summary(err)
    _check(counts, reasons, Counter(reason for _, _, reason in cases), len(cases), err)
    assert "mqtt: delivered" in err and "dropped 0" in err
