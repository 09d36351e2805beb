"""The counting subscriber counts distinct (device, seq) and duplicates the same with either engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_sim.subscriber import CountingSubscriber
from tests.fixtures.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("engine", ["paho", "mosquitto_sub"])
def test_both_engines_count_distinct_seqs_and_duplicates(engine: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    if engine == "mosquitto_sub" and shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto-clients not installed")
    sub = CountingSubscriber(mosquitto.url, "edgernn", tmp_path, client_id=f"counter-{engine}", engine=engine).start()
    assert sub.engine_used == engine
    sent = [("dev1", s) for s in (1, 2, 3, 3, 5)] + [("dev2", 1)]  # dev1 seq 3 twice, seq 4 never
    for dev, seq in sent:
        payload = f'{{"seq":{seq},"time":1.0,"stream":"{dev}","values":[0.5]}}'
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                mosquitto.host,
                "-p",
                str(mosquitto.port),
                "-q",
                "1",
                "-t",
                f"edgernn/{dev}/prediction",
                "-m",
                payload,
            ],
            check=True,
            timeout=10,
        )
    subprocess.run(  # not a prediction: not counted
        ["mosquitto_pub", "-h", mosquitto.host, "-p", str(mosquitto.port), "-t", "edgernn/dev1/status", "-m", "{}"],
        check=True,
        timeout=10,
    )
    assert sub.wait_for(5, timeout=10) == 5
    got = sub.finish()
    assert {d: s.tolist() for d, s in got.seqs.items()} == {"dev1": [1, 2, 3, 5], "dev2": [1]}
    assert got.duplicates == {"dev1": 1, "dev2": 0}
    assert int(got.per_second.sum()) == 6
