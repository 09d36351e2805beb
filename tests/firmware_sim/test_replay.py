"""Replay: a bundle trained on a user's CSV (feature and label names of its own) simulates from that CSV, or
from the held-out readings it carries, with faults; ground truth stays lined up through offsets and loops."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edge_runtime.bundle.manifest import Manifest
from edgernn.errors import ConfigError
from firmware_sim import FaultSpec, Scenario, run_simulation
from firmware_sim.scenario import BrokerSpec
from firmware_sim.signals import imu_dataset, to_csv
from firmware_sim.signals.replay import Recording, ReplaySignal, load_replay
from tests.firmware_sim.replaykit import fleet_spec, inspect_numpy_figure, train_and_export
from tests.firmware_sim.test_simulation import _balanced

RATE = 20.0
RENAME = {"ax": "acc_x", "ay": "acc_y", "az": "acc_z", "gx": "gyro_x", "gy": "gyro_y", "gz": "gyro_z"}
STATES = {"idle": "resting", "walk": "walking", "run": "running", "stairs": "climbing"}
# The simulator scores every prediction; inspect's quality skips the first `warmup` (19) readings of each
# held-out stream. Over the same readings from a reset that moves accuracy by a fraction of a point.
SAME_READINGS_TOLERANCE = 0.01
# With seeded offsets and loops the devices meet other stretches and a state carried over the loop seam.
LOOPED_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(bundle, CSV): a GRU 1x16 trained by `edgernn train` on a CSV of 6 units x 90 s at 20 Hz whose columns
    are the user's own (time_s, unit, acc_*, gyro_*, state); exported numpy-only."""
    root = tmp_path_factory.mktemp("own")
    df = imu_dataset(devices=6, duration_s=90, rate=RATE, seed=3).rename(
        columns={**RENAME, "t": "time_s", "device": "unit", "activity": "state"}
    )
    df["state"] = df["state"].map(STATES)
    csv = to_csv(df, root / "mine.csv")
    args = ["--data", str(csv), "--time-column", "time_s", "--series-column", "unit", "--target", "state",
            "--task", "classify", "--cell", "gru", "--hidden", "16", "--window", "20", "--epochs", "6"]  # fmt: skip
    yield train_and_export(args, root), csv


def _inspect_accuracy(bundle: Path, capsys: pytest.CaptureFixture[str]) -> float:
    """The numpy-fp32 accuracy in `edgernn inspect`'s quality table."""
    accuracy, out = inspect_numpy_figure(bundle, capsys)
    assert re.search(r"^replay   \d+ held-out readings in heldout.npz \(6 streams\), for edgernn simulate", out, re.M)
    return accuracy


def test_replay_signal_keeps_truth_with_its_reading_through_offsets_and_loops() -> None:
    n = 37
    rec = Recording("r", np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32), np.arange(n) % 3)
    sigs = [ReplaySignal(rec, RATE, seed=5, index=i) for i in range(4)]
    for sig in sigs:
        x = np.concatenate([sig.read(k).x for k in (5, 50, 1, 64)])  # 120 readings: past the end three times
        sig2 = ReplaySignal(rec, RATE, seed=5, index=sig.index)
        chunk = sig2.read(120)
        pos = (sig.start + np.arange(120)) % n
        np.testing.assert_array_equal(x[:, 0], pos)  # consecutive from the offset, looped
        np.testing.assert_array_equal(chunk.x, x)  # the same however the run is cut into chunks
        np.testing.assert_array_equal(chunk.truth, pos % 3)  # each reading's own truth
    assert len({s.start for s in sigs}) > 1  # seeded offsets: devices are not in lock step
    assert ReplaySignal(rec, RATE, 5, 0, random_offset=False).read(3).x[0, 0] == 0


def test_csv_recordings_by_device_column_in_time_order_with_labels(own: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _ = own
    m = Manifest.load(bundle)
    rows = []
    for unit in ("dev0001", "other"):
        for k in range(40):
            row: dict[str, object] = dict.fromkeys(RENAME.values(), 0.0)
            row.update(time_s=k / RATE, unit=unit, acc_x=float(k), state=m.output.labels[k % 4] if k != 7 else "x")
            rows.append(row)
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # shuffled: replay must put them in time order
    df.to_csv(tmp_path / "r.csv", index=False)
    rep = load_replay(f"replay:{tmp_path / 'r.csv'}", m, bundle, {"offset": "start"})
    assert sorted(r.name for r in rep.recordings) == ["dev0001", "other"]  # cut by the unit column
    assert rep.rate == pytest.approx(RATE) and rep.truth_kind == "label"
    assert rep.assign("dev0001", 0) == [r.name for r in rep.recordings].index("dev0001")  # by name
    assert rep.assign("dev0005", 5) == 1  # else round-robin
    chunk = rep.signal(RATE, 0, 0, 0).read(90)
    at = chunk.x[:, 0].astype(int)  # (90,) the row each reading came from
    np.testing.assert_array_equal(at, np.arange(90) % 40)  # time order, looped
    names = np.asarray(rep.labels)[chunk.truth]
    expect = np.where(at == 7, "", np.asarray(m.output.labels)[at % 4])  # "x" is no label of the bundle: unscored
    np.testing.assert_array_equal(names, expect)


def test_bundle_carries_its_held_out_readings(own: tuple[Path, Path]) -> None:
    bundle, _ = own
    m = json.loads((bundle / "manifest.json").read_text())
    rep = m["replay"]
    assert rep["file"] == "heldout.npz" and rep["bytes"] == (bundle / "heldout.npz").stat().st_size <= rep["cap_bytes"]
    import hashlib

    assert hashlib.sha256((bundle / "heldout.npz").read_bytes()).hexdigest() == rep["sha256"]
    with np.load(bundle / "heldout.npz") as z:
        assert z["x"].shape[0] == rep["streams"] == 6 and z["x"].shape[2] == 6
        assert z["x"].shape[0] * z["x"].shape[1] == rep["readings"]


def test_no_signal_replays_its_held_out_readings_with_inspects_accuracy(
    own: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """No fault, one device per held-out stream from its first reading: the report's accuracy is inspect's."""
    bundle, _ = own
    inspected = _inspect_accuracy(bundle, capsys)
    held = json.loads((bundle / "manifest.json").read_text())["replay"]
    per_stream = held["readings"] // held["streams"]
    sc = Scenario(fleets=[fleet_spec(bundle, 6, offset="start")], duration_s=per_stream / RATE, progress=False)
    report = run_simulation(sc)
    _balanced(report)
    fleet = report.data["fleets"]["fleet0"]
    assert fleet["signal"] == "replay:bundle"
    assert any("replaying its own held-out readings (heldout.npz: 6 streams" in w for w in fleet["warnings"])
    c = report.fleet["classification"]
    assert c["readings"] == held["readings"]  # every held-out reading, once
    assert c["accuracy"] == pytest.approx(inspected, abs=SAME_READINGS_TOLERANCE)
    # seeded offsets and three loops over each recording: still inspect's figure, within the looser tolerance
    looped = run_simulation(Scenario(fleets=[fleet_spec(bundle, 6)], duration_s=3 * per_stream / RATE, progress=False))
    assert looped.fleet["classification"]["accuracy"] == pytest.approx(inspected, abs=LOOPED_TOLERANCE)
    assert "replay:bundle" in looped.summary()


def test_replay_accounting_balances_through_every_fault(own: tuple[Path, Path]) -> None:
    bundle, csv = own
    faults = [
        FaultSpec("nan-burst", at=3, duration=2, devices=["dev0000"], params={"channels": 2}),
        FaultSpec("dropout", at=6, duration=3, devices=["dev0001"]),
        FaultSpec("stuck", at=10, duration=3, devices=["dev0002"]),
        FaultSpec("spike", at=14, duration=4, devices=["dev0003"], params={"rate": 0.5, "size": 5.0}),
        FaultSpec("clock-jitter", at=18, duration=4, devices=["dev0004"], params={"sigma_ms": 40.0}),
        FaultSpec("clock-gap", at=22, duration=0, devices=["dev0005"], params={"step": 30.0}),
        FaultSpec("reboot", at=25, duration=1, devices=["dev0006"]),
        FaultSpec("broker-outage", at=28, duration=4),
    ]
    sc = Scenario(fleets=[fleet_spec(bundle, 8, f"replay:{csv}")], duration_s=36, faults=faults, progress=False)
    report = run_simulation(sc)
    _balanced(report)
    f, dev = report.fleet, report.data["devices"]
    assert dev["dev0000"]["flagged"]["non_finite"] == 2 * RATE
    assert dev["dev0001"]["not_sampled"] == 3 * RATE
    assert dev["dev0003"]["flagged"].get("out_of_range", 0) > 0
    assert f["reboots"] == 1 and f["outbox_peak"] >= 4 * RATE
    assert report.data["fleets"]["fleet0"]["signal"] == f"replay:{csv}"
    assert f["classification"]["readings"] == f["predictions"] and f["classification"]["accuracy"] > 0.8


@pytest.mark.broker
@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(), reason="no mosquitto"
)
def test_replay_through_a_real_broker_with_slow_network_and_outage(own: tuple[Path, Path]) -> None:
    bundle, csv = own
    faults = [
        FaultSpec("slow-network", at=2, duration=4, params={"delay_ms": 200.0}),
        FaultSpec("broker-outage", at=8, duration=3),
    ]
    sc = Scenario(
        fleets=[fleet_spec(bundle, 3, f"replay:{csv}")], duration_s=14, faults=faults, broker=BrokerSpec(url="spawn"),
        progress=False,
    )  # fmt: skip
    report = run_simulation(sc)
    f = report.fleet
    assert f["accounting"]["balanced"] and f["predictions"] == f["published"] == f["delivered"] > 0
    assert f["missing"] == 0 and f["classification"]["readings"] == f["predictions"]


def test_a_bundle_with_nothing_to_replay_is_told_what_is_missing(own: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, csv = own
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    m = json.loads((old / "manifest.json").read_text())
    del m["replay"]
    (old / "manifest.json").write_text(json.dumps(m))
    (old / "heldout.npz").unlink()
    with pytest.raises(ConfigError) as err:
        run_simulation(Scenario(fleets=[fleet_spec(old, 2)], duration_s=2, progress=False))
    msg = str(err.value)
    assert "no simulated signal provides the bundle's features ['acc_x'" in msg
    assert "the bundle carries no held-out readings to replay" in msg and "--signal replay:YOUR.csv" in msg
    with pytest.raises(ConfigError, match=r"carries no held-out readings to replay \(manifest 'replay'\)"):
        run_simulation(Scenario(fleets=[fleet_spec(old, 2, "replay:bundle")], duration_s=2, progress=False))
    # the CSV still simulates it
    report = run_simulation(Scenario(fleets=[fleet_spec(old, 2, f"replay:{csv}")], duration_s=2, progress=False))
    assert report.fleet["predictions"] == 2 * 2 * RATE


def test_replay_files_that_do_not_fit_are_named(own: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, csv = own
    with pytest.raises(ConfigError, match=r"signal 'replay:nope.csv': 'nope.csv' does not exist"):
        Scenario.from_flags(bundle=bundle, devices=1, duration="5s", signal="replay:nope.csv")
    pd.read_csv(csv).drop(columns=["gyro_z"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ConfigError, match=r"has no column for the bundle's features \['gyro_z'\]; it has: time_s"):
        run_simulation(Scenario(fleets=[fleet_spec(bundle, 1, f"replay:{tmp_path / 'short.csv'}")], duration_s=1))
    (tmp_path / "empty.csv").write_text(",".join(["time_s", "unit", *RENAME.values(), "state"]) + "\n")
    with pytest.raises(ConfigError, match=r"no readings in .*empty.csv"):
        run_simulation(Scenario(fleets=[fleet_spec(bundle, 1, f"replay:{tmp_path / 'empty.csv'}")], duration_s=1))
    with pytest.raises(ConfigError, match=r"unknown parameters \['colour'\]; allowed: device, time, label"):
        run_simulation(Scenario(fleets=[fleet_spec(bundle, 1, f"replay:{csv}", colour=1)], duration_s=1))


def test_cli_simulates_200_devices_of_my_csv_with_faults(own: tuple[Path, Path], tmp_path: Path) -> None:
    """The README's path: `edgernn simulate --bundle mine --signal replay:mine.csv --devices 200 --faults ...`."""
    from edgernn.cli import main

    bundle, csv = own
    args = ["simulate", "--bundle", str(bundle), "--signal", f"replay:{csv}", "--devices", "200", "--duration",
            "5s", "--faults", "dropout,nan-burst,reboot", "--report", str(tmp_path / "sim"), "--no-progress",
            "--strict"]  # fmt: skip
    assert main(args) == 0
    data = json.loads((tmp_path / "sim" / "report.json").read_text())
    assert data["fleet"]["devices"] == 200 and data["fleet"]["accounting"]["balanced"]
    assert data["fleet"]["classification"]["accuracy"] > 0.8


def test_scenario_file_names_a_replay_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv").write_text("t,x\n0,1\n")
    (tmp_path / "s.toml").write_text(
        'duration = "1m"\n[[fleet]]\nbundle = "b"\ndevices = 3\nsignal = "replay:data/mine.csv"\n'
        'signal_params = { label = "state", offset = "start" }\n'
    )
    fleet = Scenario.from_toml(tmp_path / "s.toml").fleets[0]
    assert fleet.signal == f"replay:{tmp_path / 'data' / 'mine.csv'}"
    assert fleet.signal_params == {"label": "state", "offset": "start"}
    (tmp_path / "s.toml").write_text('duration = "1m"\n[[fleet]]\nbundle = "b"\nsignal = "replay:gone.csv"\n')
    with pytest.raises(ConfigError, match=r"signal 'replay:gone.csv': 'gone.csv' does not exist"):
        Scenario.from_toml(tmp_path / "s.toml")


def test_anomaly_replay_scores_the_files_own_episodes(cold_bundle: Path, tmp_path: Path) -> None:
    """Cold rooms recorded to CSV and replayed from their first reading: every episode of the file's anomaly
    column is an episode of the report, on the device that replays it."""
    from firmware_sim.signals import temperature_dataset
    from tests.firmware_sim.conftest import COLD_PARAMS

    df = temperature_dataset(devices=2, duration_s=1800, rate=1.0, seed=9, **COLD_PARAMS)
    csv = to_csv(df, tmp_path / "rooms.csv")
    fleet = fleet_spec(cold_bundle, 2, f"replay:{csv}", offset="start")
    report = run_simulation(Scenario(fleets=[fleet], duration_s=1800, progress=False))
    _balanced(report)
    for dev, g in df.groupby("device"):
        a = g["anomaly"].to_numpy()
        episodes = int(a[0] == 1) + int(((a[1:] == 1) & (a[:-1] == 0)).sum())
        assert episodes > 0 and report.device(str(dev))["anomaly"]["episodes"] == episodes, dev
    r = report.fleet["anomaly"]["readings"]
    assert r["tp"] + r["fn"] == int(df["anomaly"].sum()) and r["tp"] + r["fp"] + r["tn"] + r["fn"] == 3600


def test_replay_sharded_over_workers_gives_each_device_the_same_recording(own: tuple[Path, Path]) -> None:
    """Devices split over two processes replay the same recordings from the same offsets as in one."""
    bundle, csv = own

    def accuracy(workers: int) -> dict[str, float]:
        sc = Scenario(fleets=[fleet_spec(bundle, 9, f"replay:{csv}")], duration_s=6, seed=2, progress=False)
        return {d: v["accuracy"] for d, v in run_simulation(sc, workers=workers).data["devices"].items()}

    one, two = accuracy(1), accuracy(2)
    assert len(one) == 9 and one == two
    assert len(set(one.values())) > 3  # devices replay different stretches, not one in lock step
