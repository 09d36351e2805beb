"""What a fleet measures of the runtime on this host before it runs: the per-reading step time and the
footprint of a fresh runtime process, both with the fleet's own bundle and artifact."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_runtime.stream.predictor import Predictor
from firmware_sim.latency import HostTiming, LatencyModel, measure_host
from firmware_sim.profiles import DeviceProfile
from firmware_sim.signals import Signal


def host_step_time(
    predictor: Predictor, bundle: Any, sig: Signal, cols: list[int], epoch: float, period: float, n: int = 300
) -> HostTiming:
    """The runtime's own per-reading latency on this host, one reading at a time (batch 1), on `n` readings
    of `sig` (its columns `cols` are the bundle's features)."""
    calib = Predictor.load(bundle, artifact=predictor.artifact.id, verify=False)
    x = sig.read(n).x[:, cols].astype(np.float64)

    def step(row: np.ndarray, t: float) -> float | None:
        pred = calib.step_one(row, t=epoch + t * period, stream="calibration")
        return None if pred is None else pred.latency_us

    try:
        return measure_host(step, x)
    finally:
        calib.close()


def footprint(predictor: Predictor, profile: DeviceProfile, latency: LatencyModel) -> dict[str, float | str]:
    """Peak RSS and start-up of a fresh runtime process with this artifact (the runtime's own probe),
    against the profile's memory; start-up scaled by the profile's factor."""
    from edge_runtime.device.bench import backend_footprint

    fp: dict[str, float | str] = dict(backend_footprint(predictor.bundle, predictor.artifact.id))
    if "rss_mb" in fp:
        fp["profile_memory_mb"] = float(profile.memory_mb)
        fp["memory_share"] = float(fp["rss_mb"]) / profile.memory_mb
        fp["start_s_on_profile"] = float(fp["load_s"]) * latency.factor
    return fp
