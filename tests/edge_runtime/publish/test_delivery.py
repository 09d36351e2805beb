"""Delivery against a real Mosquitto, counted by (device, seq) at subscribers that are not ours
(`mosquitto_sub` with a persistent QoS 1 session) and at `edgernn listen`."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from edge_runtime.publish import open_publisher
from tests.edge_runtime.publish.helpers import (
    FAST,
    Producer,
    figures,
    first_arrival_order,
    pred,
    report_figures,
    wait_until,
)

pytestmark = pytest.mark.broker


def _listen(url: str, tmp_path, *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "edgernn",
        "listen",
        "--broker",
        url,
        "--json",
        "--report",
        str(tmp_path / "listen.json"),
    ]
    return subprocess.Popen([*cmd, *args], stdout=open(tmp_path / "listen.out", "w"), stderr=subprocess.PIPE, text=True)


def _listen_ready(broker, tmp_path, proc) -> None:
    """Probe predictions on a throwaway device until listen prints one: then it is subscribed."""
    probe = json.dumps({"seq": 1, "time": 0, "stream": "probe", "values": []})

    def seen():
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", "edgernn/probe/prediction", "-m", probe],
            capture_output=True,
            timeout=5,
        )
        return '"probe"' in (tmp_path / "listen.out").read_text()

    assert wait_until(seen, 15, step=0.2), proc.stderr.read() if proc.poll() is not None else "listen not ready"


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_ten_thousand_predictions_none_missing(mosquitto, mosquitto_sub, tmp_path, protocol):
    n = 10_000
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id=f"audit-{protocol}")
    listen = _listen(mosquitto.url, tmp_path, "--count", str(n + 1), "--timeout", "90", "--protocol", protocol)
    _listen_ready(mosquitto, tmp_path, listen)
    from dataclasses import replace

    pub = open_publisher(mosquitto.url, "dev1", state_dir=tmp_path / "state", config=replace(FAST, protocol=protocol))
    t0 = time.perf_counter()
    seqs = [pub.publish(pred("dev1", i)) for i in range(n)]
    assert pub.flush(60), f"outbox still holds {pub.depth}"
    elapsed = time.perf_counter() - t0
    pub.close()
    assert seqs == list(range(1, n + 1))
    expected = {("dev1", s) for s in seqs}
    got = [p for p in sub.wait_for(n + 1, 60) if p[0] == "dev1"]  # + the listen probe
    figs = figures(got, expected)
    assert figs["lost"] == 0 and figs["unexpected"] == 0, figs
    assert first_arrival_order(got) == seqs  # in order
    listen.wait(90)
    report = json.loads((tmp_path / "listen.json").read_text())
    assert report["devices"]["dev1"]["unique"] == n and report["devices"]["dev1"]["missing"] == 0
    assert report["devices"]["dev1"]["first"] == 1 and report["devices"]["dev1"]["last"] == n
    lines = [json.loads(x) for x in (tmp_path / "listen.out").read_text().splitlines()]
    assert sorted(p["seq"] for p in lines if p["stream"] == "dev1") == seqs
    report_figures(
        f"10k MQTT {protocol}",
        {**figs, "listen_unique": report["devices"]["dev1"]["unique"], "msg_per_s_through_broker": round(n / elapsed)},
    )


def test_broker_sigkilled_and_restarted_mid_stream_loses_nothing(mosquitto, mosquitto_sub, tmp_path):
    n, kills = 6000, 4
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-kill")
    pub = open_publisher(mosquitto.url, "dev1", state_dir=tmp_path / "state", config=FAST)
    producer = Producer(pub, n, rate=1000.0)
    producer.start()
    for _ in range(kills):
        time.sleep(0.8)
        mosquitto.kill()
        time.sleep(0.3)
        mosquitto.start()
    producer.join(60)
    assert producer.error is None and len(producer.seqs) == n
    assert pub.flush(60), f"outbox still holds {pub.depth}"
    pub.close()
    expected = {("dev1", s) for s in range(1, n + 1)}
    got = sub.wait_for(n, 60)
    figs = figures(got, expected)
    report_figures("broker SIGKILL x4", figs)
    assert figs["lost"] == 0, f"{figs}; broker log:\n{mosquitto.log_tail()}"
    assert mosquitto.starts == kills + 1


def test_status_online_then_offline_and_last_will(mosquitto, mosquitto_sub, tmp_path):
    sub = mosquitto_sub(mosquitto, "edgernn/+/status", client_id="audit-status")
    script = (
        "import sys, time; sys.path.insert(0, '.');"
        "from edge_runtime.publish import open_publisher, BrokerConfig;"
        f"p = open_publisher({mosquitto.url!r}, 'dev9', config=BrokerConfig(keepalive=5));"
        "print('up', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"

    def states():
        return [json.loads(x.split(" ", 1)[1])["state"] for x in sub.lines() if x.startswith("edgernn/dev9/status ")]

    assert wait_until(lambda: states() == ["online"], 15), states()
    proc.kill()  # no goodbye: the broker publishes the last will (at once, as the socket closed)
    proc.wait(10)
    assert wait_until(lambda: states() == ["online", "offline"], 15), states()
    pub = open_publisher(mosquitto.url, "dev8", config=FAST)
    pub.close()
    assert wait_until(lambda: any(x.startswith("edgernn/dev8/status ") and '"offline"' in x for x in sub.lines()), 10)


def test_publishers_driven_on_one_thread_deliver_everything_across_a_broker_kill(mosquitto, mosquitto_sub, tmp_path):
    """`driven_here`: a simulated fleet runs its publishers on its own thread, pumping where it would sleep."""
    import threading

    from edge_runtime.publish.netloop import driven_here

    devices, per = [f"d{i}" for i in range(20)], 150
    sub = mosquitto_sub(mosquitto, "edgernn/+/prediction", client_id="audit-driven")
    before = {t.name for t in threading.enumerate()}
    with driven_here() as driver:
        pubs = [open_publisher(mosquitto.url, d, state_dir=tmp_path / d, config=FAST) for d in devices]
        started = {t.name for t in threading.enumerate()} - before
        assert not any(name.startswith("edgernn-mqtt-") for name in started), started  # no loop threads
        for i in range(per):
            for d, pub in zip(devices, pubs, strict=True):
                pub.publish(pred(d, i))
            driver.pump(0.002)  # a tick of the device loop
            if i == per // 3:
                mosquitto.kill()
            if i == per // 2:
                mosquitto.start()
        assert all(pub.flush(30) for pub in pubs), [pub.depth for pub in pubs]
        for pub in pubs:
            pub.close()
    got = sub.wait_for(len(devices) * per, 60)
    figs = figures(got, {(d, s) for d in devices for s in range(1, per + 1)})
    report_figures("20 publishers on one thread, broker SIGKILL", figs)
    assert figs["lost"] == 0, figs
    # after the block, a publisher runs on its own threads again: nobody pumps, and it still delivers
    pub = open_publisher(mosquitto.url, "after", state_dir=tmp_path / "after", config=FAST)
    pub.publish(pred("after", 0))
    assert pub.flush(10)
    pub.close()


def test_publish_refused_by_the_broker_acl_is_counted_not_retried(mosquitto_factory, tmp_path):
    """An MQTT 5 PUBACK with a failure reason (longer than the two-byte success form) goes through paho's own
    decoder and counts as dropped: re-sending a message the broker refuses would block the outbox forever."""
    from dataclasses import replace

    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edgernn/+/status\ntopic readwrite edgernn/allowed/#\n")
    broker = mosquitto_factory(extra=[f"acl_file {acl}"])
    config = replace(FAST, protocol="5")
    denied = open_publisher(broker.url, "dev1", state_dir=tmp_path / "denied", config=config)
    allowed = open_publisher(broker.url, "allowed", state_dir=tmp_path / "allowed", config=config)
    for i in range(50):
        denied.publish(pred("dev1", i))
        allowed.publish(pred("allowed", i))
    assert denied.flush(10) and allowed.flush(10)
    assert (denied.dropped, allowed.dropped) == (50, 0)
    denied.close()
    allowed.close()
