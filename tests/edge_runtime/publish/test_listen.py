"""`edgernn listen`: a live table, duplicates dropped by (device, seq), gaps and device drops reported."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from edgernn.cli import main
from tests.edge_runtime.publish.helpers import pred, wait_until


def _pub(broker, topic: str, payload: str, retain: bool = False) -> None:
    cmd = ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", topic, "-m", payload]
    subprocess.run([*cmd, "-r"] if retain else cmd, check=True, timeout=10)


@pytest.mark.broker
def test_listen_prints_each_prediction_once_and_reports_gaps_duplicates_and_drops(mosquitto, tmp_path, capsys):
    status = {"state": "online", "device": "dev1", "outbox": {"depth": 0, "dropped": 5, "delivered": 4}}
    _pub(mosquitto, "edgernn/dev1/status", json.dumps(status), retain=True)  # listen shows it on subscribing
    report = tmp_path / "report.json"
    args = ["listen", "--broker", mosquitto.url, "--count", "6", "--timeout", "30", "--report", str(report)]
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(args)), daemon=True)
    thread.start()
    out_so_far: list[str] = []

    def subscribed() -> bool:
        out_so_far.append(capsys.readouterr().out)
        return "# dev1 online" in "".join(out_so_far)

    assert wait_until(subscribed, 15, step=0.05)
    for device, seq in [("dev1", 1), ("dev1", 2), ("dev1", 2), ("dev1", 3), ("dev1", 5), ("dev2", 10), ("dev2", 11)]:
        p = pred(device)
        p.seq = seq
        _pub(mosquitto, f"edgernn/{device}/prediction", p.to_json())
    thread.join(30)
    assert result == [0]
    captured = capsys.readouterr()
    out = "".join(out_so_far) + captured.out
    rows = [ln for ln in out.splitlines() if " walk (0.70) " in ln]
    assert [ln.split()[1:3] for ln in rows] == [
        ["dev1", "1"], ["dev1", "2"], ["dev1", "3"], ["dev1", "5"], ["dev2", "10"], ["dev2", "11"]
    ]  # fmt: skip
    assert "0.12 ms" in rows[0]
    assert "received 6 predictions, 1 duplicates dropped, 1 missing" in captured.err
    assert "dev1: seq 1..5, 4 received, 1 duplicates, 1 missing [4], 5 dropped by the device's outbox bounds" in (
        captured.err
    )
    rep = json.loads(report.read_text())
    assert rep["devices"]["dev1"]["gaps"] == [[4, 4]] and rep["devices"]["dev2"]["missing"] == 0


def test_listen_to_an_unreachable_broker_is_one_line(tmp_path, capsys):
    from tests.fixtures.mosquitto import free_port

    code = main(["listen", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edgernn listen: error: cannot reach broker mqtt://127.0.0.1:")


def test_listen_refuses_bad_arguments_by_name(capsys):
    assert main(["listen", "--count", "0"]) == 2
    assert "--count 0; allowed: 1 or more" in capsys.readouterr().err
    assert main(["listen", "--device", "a/b"]) == 2
    assert "invalid device 'a/b'" in capsys.readouterr().err


@pytest.mark.broker
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_listen_session_gets_what_was_published_while_it_was_away(mosquitto, tmp_path, capsys, protocol):
    args = ["listen", "--broker", mosquitto.url, "--session", f"audit-{protocol}", "--protocol", protocol, "--json"]
    assert main([*args, "--timeout", "0.5"]) == 0  # the broker now keeps a session for this client id
    capsys.readouterr()
    for seq in range(1, 6):
        p = pred("dev3")
        p.seq = seq
        _pub(mosquitto, "edgernn/dev3/prediction", p.to_json())
    assert main([*args, "--count", "5", "--timeout", "20"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [p["seq"] for p in lines] == [1, 2, 3, 4, 5]
