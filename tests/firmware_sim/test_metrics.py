"""Report arithmetic: latency percentiles, classification scores, anomaly detection delay and false alarms."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from firmware_sim.faults import FaultSpec
from firmware_sim.injector import DeviceFault, Injector
from firmware_sim.latency import HostTiming, LatencyModel
from firmware_sim.metrics import AnomalyTracker, LatencyHistogram, classification_scores
from firmware_sim.profiles import PROFILES, DeviceProfile, get_profile


def test_histogram_percentiles_match_numpy_within_bin_width() -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(np.log(800.0), 0.4, 20000)  # microseconds
    dev = rng.integers(0, 3, len(lat))
    h = LatencyHistogram(3)
    h.add(dev, lat)
    got = h.percentiles()
    for q in (50, 95, 99):
        assert got[f"p{q}"] == pytest.approx(np.percentile(lat, q), rel=0.015)
    one = h.percentiles(1)
    assert one["p50"] == pytest.approx(np.percentile(lat[dev == 1], 50), rel=0.015)
    assert h.max_us() == pytest.approx(lat.max(), rel=0.025)


def test_classification_scores_from_a_confusion_matrix() -> None:
    conf = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])  # class 2 never occurs
    s = classification_scores(conf, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(17 / 20)
    f1_a = 2 * (8 / 9) * (8 / 10) / (8 / 9 + 8 / 10)
    f1_b = 2 * (9 / 11) * (9 / 10) / (9 / 11 + 9 / 10)
    assert s["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)  # over the classes that occurred
    assert s["per_class"]["c"]["n"] == 0


def test_anomaly_delay_misses_and_false_alarms() -> None:
    tr = AnomalyTracker(2)
    # device 0: episode at t=3..6, first alarm at t=5 -> delay 2; a false alarm at t=1 (one rising edge, 2 readings)
    # device 1: episode at t=2..4 never alarmed -> missed
    truth0 = [0, 0, 0, 1, 1, 1, 1, 0]
    alarm0 = [0, 1, 1, 0, 0, 1, 1, 0]
    truth1 = [0, 0, 1, 1, 1, 0, 0, 0]
    alarm1 = [0] * 8
    for t in range(8):
        tr.add(
            np.array([0, 1]), float(t), np.array([truth0[t], truth1[t]], bool), np.array([alarm0[t], alarm1[t]], bool)
        )
    s = tr.summary(hours=1.0)
    assert s["episodes"] == 2 and s["detected"] == 1 and s["missed"] == 1
    assert s["detection_delay_s"] == {"mean": 2.0, "p50": 2.0, "max": 2.0}
    assert s["false_alarms"] == 1
    assert s["readings"] == {"tp": 2, "fp": 2, "tn": 7, "fn": 5}


def test_an_alarm_on_a_stuck_sensor_is_not_a_false_alarm() -> None:
    """Device 0's sensor sticks at t=10..20 s and the model alarms at 15 s and again 30 s after the fault (the
    state recovering): both are the fault's, counted apart; device 1 alarms with a healthy sensor: false."""
    stuck = DeviceFault(FaultSpec("stuck", at=10.0, duration=10.0), np.array([0]))
    inj = Injector([stuck], 3, np.ones(3), np.random.default_rng(0))
    tr = AnomalyTracker(2)
    dev = np.array([0, 1])
    for t in range(120):
        x = np.full((2, 3), float(t))
        inj.apply(float(t), x, np.full(2, float(t)), np.ones(2, bool), np.zeros(2))
        alarm = np.array([t in (15, 16, 50), t == 70])
        tr.add(dev, float(t), np.zeros(2, bool), alarm, inj.sensor_fault(dev, float(t), 40.0))
    assert inj.sensor_fault(dev, 59.0, 40.0).tolist() == [True, False]  # 19 s was its last stuck reading
    assert inj.sensor_fault(dev, 60.0, 40.0).tolist() == [False, False]
    s = tr.summary(hours=1.0)
    assert s["false_alarms"] == 1 and s["alarms_on_sensor_faults"] == 2


def test_profiles_order_and_latency_model() -> None:
    f = {name: p.factor(1500.0) for name, p in PROFILES.items()}
    assert f["pi-5"] < f["pi-4"] < f["pi-3b-plus"] < f["pi-zero-2w"]
    assert all(v > 1 for v in f.values())  # every Pi is slower than a laptop
    pi4 = get_profile("pi-4")
    assert pi4.factor(3000.0) == pytest.approx(2 * pi4.factor(1500.0))  # a host twice as fast: twice the factor
    assert pi4.factor(pi4.score) == pytest.approx(1.0)  # a host as fast as the device: its own speed
    assert pi4.with_factor(3.0).factor(9999.0) == 3.0  # a measured factor wins over any score


def _draws(profile: DeviceProfile, host_us: float, n: int, one_at_a_time: bool = False) -> np.ndarray:
    model = LatencyModel(profile, HostTiming(host_us, host_us * 1.2, 100), 1500.0, np.random.default_rng(0))
    if one_at_a_time:
        return np.concatenate([model.sample(1) for _ in range(n)])
    return model.sample(n)


def test_modelled_latency_is_the_host_time_scaled_with_the_profiles_spread() -> None:
    zero = get_profile("pi-zero-2w")
    lat = _draws(zero, 50.0, 50000)
    # the median is the host's, times how much slower the device is (whatever its score)
    assert np.median(lat) == pytest.approx(50.0 * zero.factor(1500.0), rel=0.03)
    # log-normal spread of sigma `jitter` around it: the 84th percentile is one sigma up
    body = lat[lat < 5 * np.median(lat)]
    assert np.percentile(body, 84.13) / np.median(lat) == pytest.approx(np.exp(zero.jitter), rel=0.05)
    # hiccups: about `hiccup_rate` of the readings, each some milliseconds late
    late = lat > np.median(lat) + 1e3
    assert late.mean() == pytest.approx(zero.hiccup_rate, rel=0.35) and lat.max() > 10 * np.median(lat)
    calm = replace(zero, hiccup_rate=0.0)
    assert _draws(calm, 50.0, 50000).max() < 3 * np.median(lat)  # no hiccups, no tail
    # without hiccups latency is linear in the host time; drawing n at once is drawing one at a time n times
    np.testing.assert_allclose(_draws(calm, 100.0, 1000), 2 * _draws(calm, 50.0, 1000), atol=0.02)
    np.testing.assert_array_equal(_draws(zero, 50.0, 500), _draws(zero, 50.0, 500, one_at_a_time=True))
