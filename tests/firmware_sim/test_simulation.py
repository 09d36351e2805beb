"""Small fleets in virtual time with the in-memory publisher, running the real Predictor on a trained bundle."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgernn.errors import ConfigError
from firmware_sim import FaultSpec, LiveSnapshot, Report, Scenario, run_simulation
from firmware_sim.profiles import get_profile
from firmware_sim.scenario import FleetSpec
from tests.firmware_sim.conftest import IMU_RATE

ACCURACY_FLOOR = 0.85  # the session bundle scores ~0.95 on fresh simulated wearers; 0.85 leaves room for seeds


def _scenario(bundle: Path, devices: int, duration: float, faults: list[FaultSpec], **kw: object) -> Scenario:
    fleet = FleetSpec(bundle=bundle, devices=devices, profile=get_profile("pi-zero-2w"), rate=IMU_RATE)
    return Scenario(fleets=[fleet], duration_s=duration, faults=faults, progress=False, **kw)


def _balanced(report: Report) -> None:
    """Every reading is a prediction or a dropped reading with a reason; every prediction was delivered once."""
    for dev, d in report.data["devices"].items():
        assert d["readings_produced"] == d["predictions"] + sum(d["dropped"].values()), dev
        assert d["predictions"] == d["published"] == d["delivered"], dev
        assert d["missing"] == 0 and d["duplicates"] == 0, dev
        assert d["seq"][1] - d["seq"][0] + 1 == d["published"], dev  # no seq gap
    f = report.fleet
    assert f["accounting"]["balanced"]
    assert f["readings_produced"] == f["predictions"] + sum(f["dropped"].values())
    fleet = report.data["fleets"]["fleet0"]["accounting"]
    assert fleet["runtime_readings"] == f["readings_produced"]  # the runtime's own counters agree
    assert fleet["runtime_predictions"] == f["predictions"]


def test_every_bad_reading_is_counted_by_reason_on_its_device(imu_bundle: Path) -> None:
    faults = [
        FaultSpec("nan-burst", at=5, duration=3, devices=["dev0000", "dev0001"], params={"channels": 2}),
        FaultSpec("dropout", at=12, duration=4, devices=["dev0002"]),
        FaultSpec("stuck", at=18, duration=4, devices=["dev0003"]),
        FaultSpec("spike", at=24, duration=6, devices=["dev0004"], params={"rate": 0.5, "size": 5.0}),
        FaultSpec("clock-jitter", at=32, duration=6, devices=["dev0005"], params={"sigma_ms": 40.0}),
        FaultSpec("clock-gap", at=40, duration=0, devices=["dev0001"], params={"step": 30.0}),
    ]
    report = run_simulation(_scenario(imu_bundle, 6, 50.0, faults))
    _balanced(report)
    f, dev = report.fleet, report.data["devices"]
    assert f["unattributed"] == {}  # each bad reading was attributed to its device by the runtime's counters
    # NaN channels: held at the last good value, predicted, flagged non_finite: 3 s x 20/s on two devices
    assert dev["dev0000"]["flagged"] == {"non_finite": 60}
    assert dev["dev0001"]["flagged"]["non_finite"] == 60
    # dropout: the sensor delivered nothing for 4 s; the runtime sees a gap longer than its max_gap
    assert dev["dev0002"]["not_sampled"] == 80
    assert dev["dev0002"]["flagged"] == {"gap": 1}
    # spikes of 5 training ranges are far outside the range: kept (an excursion may be real) and flagged
    assert dev["dev0004"]["flagged"]["out_of_range"] == f["faults_injected"]["spike"] > 20
    # jitter of 40 ms at a 50 ms period sends some timestamps backwards: skipped, no prediction
    assert dev["dev0005"]["dropped"]["backwards"] > 0
    # a 30 s clock step is one gap: the stream is reset, then goes on
    assert dev["dev0001"]["flagged"]["gap"] == 1
    # a stuck sensor is invisible to input validation: only the model's accuracy can suffer
    assert dev["dev0003"]["flagged"] == {} and dev["dev0003"]["dropped"] == {}


def test_accuracy_against_ground_truth_and_determinism(imu_bundle: Path) -> None:
    a = run_simulation(_scenario(imu_bundle, 6, 90.0, [], seed=3))
    b = run_simulation(_scenario(imu_bundle, 6, 90.0, [], seed=3))
    c = a.fleet["classification"]
    assert c["readings"] == 6 * 90 * IMU_RATE
    assert c["accuracy"] >= ACCURACY_FLOOR and c["macro_f1"] >= ACCURACY_FLOOR - 0.05
    assert b.fleet["classification"] == c  # same seed: same readings, same predictions, same scores
    for d in a.data["devices"].values():
        assert d["accuracy"] > 0.6
    lat, deadline = a.fleet["latency_us"], 1e6 / IMU_RATE
    profile = a.data["fleets"]["fleet0"]["profile"]
    # the report states the factor it modelled with: the profile's, for the host score the run assumed
    assert profile["name"] == "pi-zero-2w"
    assert profile["factor"] == pytest.approx(get_profile("pi-zero-2w").factor(profile["host_score"]))
    host = a.data["fleets"]["fleet0"]["host_step_us"]["median_us"]
    assert lat["p50"] == pytest.approx(host * profile["factor"], rel=0.1)  # the modelled median
    assert lat["p50"] < lat["p95"] < lat["p99"] < deadline


def test_outage_queues_in_the_outbox_then_delivers_everything(imu_bundle: Path, tmp_path: Path) -> None:
    faults = [FaultSpec("broker-outage", at=10, duration=8)]
    seen: list[LiveSnapshot] = []
    report = run_simulation(_scenario(imu_bundle, 4, 30.0, faults, report_dir=tmp_path / "rep"), hook=seen.append)
    _balanced(report)
    assert report.fleet["outbox_peak"] >= 8 * IMU_RATE  # one device's 8 s of predictions waited
    s = report.series
    delivered = dict(zip(s["t"], s["delivered"], strict=True))
    assert all(delivered[float(t)] == 0 for t in range(11, 18))  # nothing arrives while the broker is down
    assert delivered[18.0] + delivered[19.0] >= 8 * IMU_RATE * 4  # then the backlog drains
    assert report.data["run"]["outages"] == [{"start": 10.0, "end": 18.0, "kind": "broker-outage"}]
    # the live hook: one snapshot per simulated second, counts never go down
    assert [x.sim_time for x in seen] == [float(t) for t in range(1, 30)]
    assert all(b.produced >= a.produced and b.delivered >= a.delivered for a, b in itertools.pairwise(seen))
    assert seen[12].faults_active == ["broker-outage"] and seen[12].outbox_depth > 0
    assert set(seen[-1].latest["dev0000"]) >= {"truth", "label", "t"}
    # the report on disk
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["fleet"]["delivered"] == report.fleet["delivered"] and "dev0003" in data["devices"]
    for name in ("summary.txt", "latency.png", "delivery.png", "predictions-fleet0.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 100, name


def test_reboot_restores_the_stream_from_the_checkpoint(imu_bundle: Path) -> None:
    # a short reboot (a watchdog reset): back before the runtime's max gap (10 periods), so the restored
    # state is kept; checkpoints every reading so the restored state is the one from just before the cut
    quick = [FaultSpec("reboot", at=5, duration=0.2, devices=["dev0001", "dev0002"])]
    report = run_simulation(_scenario(imu_bundle, 4, 8.0, quick), checkpoint_every=1)
    _balanced(report)
    f = report.fleet
    assert f["reboots"] == 2 and f["restores"] == {"restored": 2} and f["after_boot"] == {"kept": 2}
    assert report.device("dev0001")["not_sampled"] == 4  # off for 0.2 s at 20/s
    # a long one (a power cycle): the checkpoint is restored, then judged stale by the gap policy
    slow = [FaultSpec("reboot", at=3, duration=3.0, devices=["dev0001"])]
    report = run_simulation(_scenario(imu_bundle, 2, 8.0, slow), checkpoint_every=1)
    _balanced(report)
    assert report.fleet["restores"] == {"restored": 1} and report.fleet["after_boot"] == {"reset_by_gap": 1}


def test_restore_stream_puts_back_only_that_streams_checkpoint(imu_bundle: Path, tmp_path: Path) -> None:
    from edge_runtime.stream.predictor import Predictor
    from firmware_sim.signals import make_signal

    p = Predictor.load(imu_bundle, state_dir=tmp_path, device="fleet")
    x = make_signal("imu", IMU_RATE, seed=0, index=0).read(60).x.astype(np.float64)
    ids = ["a", "b"]
    for k in range(30):
        p.step_many(np.stack([x[k], x[k] * 0.5]), ids, t=np.full(2, 1000.0 + k / IMU_RATE))
    p.save_state()
    saved_a, saved_b = p.state("a"), p.state("b")
    for k in range(30, 40):
        p.step_many(np.stack([x[k], x[k] * 0.5]), ids, t=np.full(2, 1000.0 + k / IMU_RATE))
    live_b = p.state("b")
    assert not np.allclose(p.state("a")[0], saved_a[0])
    assert p.restore_stream("a") == "restored"
    np.testing.assert_array_equal(p.state("a")[0], saved_a[0])
    np.testing.assert_array_equal(p.state("b")[0], live_b[0])  # the other device kept running
    assert not np.allclose(live_b[0], saved_b[0])
    p.close()


def test_bundle_that_does_not_load(tmp_path: Path) -> None:
    bad = tmp_path / "bundle"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"fleet 'fleet0': bundle '.*bundle' does not load: cannot read"):
        run_simulation(_scenario(bad, 2, 5.0, []))


def test_signal_that_does_not_match_the_bundle(imu_bundle: Path) -> None:
    sc = _scenario(imu_bundle, 2, 5.0, [])
    sc.fleets[0].signal = "vibration"
    with pytest.raises(ConfigError, match=r"signal 'vibration' has no channel for the bundle's features \['ax'"):
        run_simulation(sc)


def test_anomaly_detection_delay_and_false_alarms(cold_bundle: Path) -> None:
    """Door-open excursions in cold rooms: at least 80% detected, half of them within 30 s."""
    from tests.firmware_sim.conftest import COLD_PARAMS

    fleet = FleetSpec(
        bundle=cold_bundle, devices=4, profile=get_profile("pi-4"), rate=1.0, signal="temperature",
        signal_params=dict(COLD_PARAMS),
    )  # fmt: skip
    report = run_simulation(Scenario(fleets=[fleet], duration_s=3600, seed=5, progress=False))
    _balanced(report)
    a = report.fleet["anomaly"]
    assert a["episodes"] >= 8  # ~one excursion per room every 10 minutes
    assert a["detected"] + a["missed"] == a["episodes"] and a["detected"] >= 0.8 * a["episodes"]
    assert 0 <= a["detection_delay_s"]["p50"] <= 30
    assert a["false_alarms_per_device_hour"] == pytest.approx(a["false_alarms"] / 4)
    r = a["readings"]
    assert r["tp"] + r["fp"] + r["tn"] + r["fn"] == report.fleet["predictions"]
    per_device = [report.device(f"dev{i:04d}")["anomaly"]["episodes"] for i in range(4)]
    assert sum(per_device) == a["episodes"]


def test_sharded_over_worker_processes_gives_the_same_fleet(imu_bundle: Path) -> None:
    """Devices split over two processes: the same readings, faults, predictions and scores as in one."""
    faults = [
        FaultSpec("nan-burst", at=4, duration=2, devices=["dev0001", "dev0004"], params={"channels": 1}),
        FaultSpec("broker-outage", at=6, duration=3),
        FaultSpec("reboot", at=8, duration=0.2, devices=["dev0003"]),
    ]
    one = run_simulation(_scenario(imu_bundle, 5, 12.0, faults, seed=4), workers=1, checkpoint_every=1)
    two = run_simulation(_scenario(imu_bundle, 5, 12.0, faults, seed=4), workers=2, checkpoint_every=1)
    _balanced(two)
    assert two.data["run"]["workers"] == 2 and one.data["run"]["workers"] == 1
    keys = ("readings_produced", "predictions", "dropped", "flagged", "published", "delivered", "reboots", "restores")
    assert {k: two.fleet[k] for k in keys} == {k: one.fleet[k] for k in keys}
    assert two.fleet["classification"] == one.fleet["classification"]
    assert [d["accuracy"] for d in two.data["devices"].values()] == [
        d["accuracy"] for d in one.data["devices"].values()
    ]
    assert two.fleet["outbox_peak"] >= 3 * IMU_RATE  # each shard queued through the outage
    assert len(two.series["t"]) == 12 and sum(two.series["delivered"]) == two.fleet["delivered"]


def test_backlog_says_how_far_delivery_trails_at_the_end(imu_bundle: Path) -> None:
    """An outage still on at the end: the clock kept pace, but ~8 s of predictions wait in the outboxes."""
    faults = [FaultSpec("broker-outage", at=12, duration=30)]
    report = run_simulation(_scenario(imu_bundle, 3, 20.0, faults))
    backlog = report.data["run"]["backlog"]
    waiting = 3 * IMU_RATE * 8  # every prediction of the last 8 s, on 3 devices
    assert backlog == {"outbox_end": waiting, "outbox_max": waiting, "seconds": 8.0}, backlog
    assert report.series["outbox"][-1] == waiting
    assert report.data["run"]["held"] is None  # virtual time: no real-time verdict
    summary = report.summary()
    assert "still in the outboxes" in summary
    # one outbox peak, one definition: the most one device's outbox held (a fleet-wide sum read as a second peak)
    assert "; peak" not in summary and "outbox peak" not in summary
    assert f"largest outbox {report.fleet['outbox_peak']} (one device's most)" in summary
    # the summary states those figures
    assert f"delivery: {waiting:.0f} predictions still in the outboxes at the end of the run (8.0 s" in report.summary()


def test_real_time_run_is_held_when_clock_and_delivery_keep_up(imu_bundle: Path) -> None:
    report = run_simulation(_scenario(imu_bundle, 3, 3.0, [], realtime=True))
    run = report.data["run"]
    assert run["held"] is True and run["backlog"]["seconds"] == 0.0, run
    assert run["ticks"] == 3 * IMU_RATE and run["late_ticks"] <= 0.05 * run["ticks"]
    assert f"real time: HELD: {run['late_ticks']} late ticks of {run['ticks']}," in report.summary()


def test_held_needs_both_the_clock_and_the_outboxes() -> None:
    from firmware_sim.report import _backlog, _held
    from firmware_sim.runner import Series

    s = Series(t=[1.0, 2.0, 3.0], produced=[100, 200, 300], outbox=[0, 150, 300])  # 100 a second made
    b = _backlog(s)
    assert b == {"outbox_end": 300.0, "outbox_max": 300.0, "seconds": 3.0}
    assert not _held(30, 0, b)  # the clock kept pace, the outboxes did not drain
    s.outbox[-1] = 50
    assert _held(30, 1, _backlog(s)) and not _held(30, 5, _backlog(s))  # 5 of 30 late: the clock fell behind


def test_not_held_on_fewer_workers_than_cores_suggests_workers(imu_bundle: Path) -> None:
    from firmware_sim.report import format_summary

    data = run_simulation(_scenario(imu_bundle, 3, 2.0, [], realtime=True)).data
    data["run"].update(held=False, workers=1, host_cores=4)
    assert "--workers 4 shares them out" in format_summary(data)
    data["run"].update(workers=4)
    assert "--workers" not in format_summary(data)  # already on every core: no hint
    data["run"].update(held=True, workers=1)
    assert "--workers" not in format_summary(data)


def _blocked_and_ticked(
    make: Callable[[], Scenario], monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[dict[str, Any], dict[str, Any], list[int]]:
    """The report data of a scenario run with ticks in blocks and tick by tick, less what differs between any
    two runs (the wall clock, the latencies modelled from the host's measured step time); and the block sizes."""
    from firmware_sim.fleet import FleetRun

    sizes: list[int] = []
    block_len = FleetRun.block_len

    def spy(self: FleetRun, k: int, t_limit: float) -> int:
        sizes.append(n := block_len(self, k, t_limit))
        return n

    monkeypatch.setattr(FleetRun, "block_len", spy)
    blocked = run_simulation(make(), **kw)
    monkeypatch.setattr(FleetRun, "block_len", lambda self, k, t_limit: 1)
    ticked = run_simulation(make(), **kw)
    timing = ("latency_us", "deadline_misses", "host_step_us", "modelled_median_us", "footprint")
    out = []
    for r in (blocked, ticked):
        data = json.loads(json.dumps(r.data))
        for key in ("wall_s", "total_wall_s", "speed", "cpu_s", "load_average"):
            data["run"].pop(key)
        for part in (data["fleet"], *data["fleets"].values(), *data["devices"].values()):
            for key in timing:
                part.pop(key, None)
        data["series"] = r.series
        out.append(data)
    return out[0], out[1], sizes


def test_ticks_stepped_in_blocks_give_the_report_of_ticks_one_by_one(
    imu_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Virtual time steps a second of ticks per runtime call where nothing else happens; around faults,
    outages and reboots it goes tick by tick. Either way the report is the same, number for number."""
    faults = [
        FaultSpec("nan-burst", at=3.5, duration=1, devices=["dev0001"], params={"channels": 1}),
        FaultSpec("broker-outage", at=6.25, duration=2),
        FaultSpec("reboot", at=9, duration=0.2, devices=["dev0002"]),
        FaultSpec("clock-gap", at=11, duration=0, devices=["dev0000"], params={"step": 0.5}),
    ]
    a, b, sizes = _blocked_and_ticked(
        lambda: _scenario(imu_bundle, 4, 14.0, faults, seed=2), monkeypatch, checkpoint_every=7
    )
    assert max(sizes) == IMU_RATE and sum(sizes) == 14 * IMU_RATE  # whole seconds where nothing happens
    assert sizes.count(1) >= IMU_RATE + 4  # tick by tick through the NaN burst and the reboot
    assert a == b
    assert a["fleet"]["outbox_peak"] > 0 and a["fleet"]["reboots"] == 1 and a["fleet"]["flagged"]
    assert a["series"]["delivered"][6:9] == [5 * 4, 0, 55 * 4]  # the outage from 6.25 s to 8.25 s, to the tick


def test_anomaly_scores_in_blocks_are_those_of_ticks_one_by_one(
    cold_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.firmware_sim.conftest import COLD_PARAMS

    fleet = FleetSpec(
        bundle=cold_bundle, devices=3, profile=get_profile("pi-4"), rate=4.0, signal="temperature",
        signal_params=dict(COLD_PARAMS),
    )  # fmt: skip
    a, b, sizes = _blocked_and_ticked(
        lambda: Scenario(fleets=[fleet], duration_s=1200, seed=5, progress=False), monkeypatch
    )
    assert set(sizes) == {4}
    assert a == b and a["fleet"]["anomaly"]["episodes"] >= 1 and a["fleet"]["anomaly"]["detected"] >= 1
