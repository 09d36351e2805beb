"""Report arithmetic: latency percentiles, classification scores, anomaly detection delay and false alarms."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.latency import HostTiming, LatencyModel
from firmware_sim.metrics import AnomalyTracker, LatencyHistogram, classification_scores
from firmware_sim.profiles import PROFILES, get_profile


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


def test_profiles_order_and_latency_model() -> None:
    f = {name: p.factor(1500.0) for name, p in PROFILES.items()}
    assert f["pi-5"] < f["pi-4"] < f["pi-3b-plus"] < f["pi-zero-2w"]
    assert f["pi-4"] == pytest.approx(1500.0 / 289.0)
    assert get_profile("pi-4").with_factor(3.0).factor(9999.0) == 3.0
    model = LatencyModel(get_profile("pi-zero-2w"), HostTiming(50.0, 60.0, 100), 1500.0, np.random.default_rng(0))
    lat = model.sample(50000)
    assert np.median(lat) == pytest.approx(50.0 * 1500.0 / 82.0, rel=0.03)
    assert lat.max() > 10 * np.median(lat)  # scheduling hiccups make a tail
