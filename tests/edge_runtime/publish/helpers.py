"""Shared helpers for the MQTT tests: predictions, manifests, bounded waits, a paced producer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping

from edge_runtime.bundle.manifest import Artifact, InputSpec, Manifest, OutputSpec, StateSpec
from edge_runtime.publish import BrokerConfig, Publisher
from edge_runtime.stream.prediction import Prediction
from edgernn.config import ModelConfig

# Reconnect quickly after a broker restart; give the first CONNACK time on a loaded CI machine.
FAST = BrokerConfig(reconnect_max_delay=1.0, connect_timeout=10.0)


def pred(stream: str = "dev1", i: int = 0) -> Prediction:
    return Prediction(
        seq=0,
        time=1_700_000_000.0 + i * 0.01,
        stream=stream,
        values=[0.1, 0.2, 0.7],
        label="walk",
        probability=0.7,
        latency_us=120.0 + i % 7,
        model="0123456789ab",
    )


def manifest(task: str = "classify", *, targets: list[str] | None = None, horizon: int = 1) -> Manifest:
    labels = ["idle", "walk", "run"] if task == "classify" else []
    targets = targets or (["temp"] if task in ("forecast", "anomaly") else [])
    out_size = len(labels) if labels else len(targets) * horizon
    return Manifest(
        model=ModelConfig(cell="gru", input_size=2, hidden_size=8, output_size=out_size, task=task, horizon=horizon),
        input=InputSpec(features=["a", "b"], dtype="float32", scaler=None, ranges={}),
        output=OutputSpec(task=task, labels=labels, targets=targets, horizon=horizon),
        state=[StateSpec(name="h", shape=[1, "batch", 8])],
        artifacts=[Artifact(id="numpy-fp32", file="weights.npz", format="numpy", precision="fp32")],
    )


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Producer(threading.Thread):
    """Publishes n predictions at about `rate` per second in the background (a device loop)."""

    def __init__(self, pub: Publisher, n: int, rate: float, stream: str = "dev1") -> None:
        super().__init__(daemon=True)
        self.pub, self.n, self.rate, self.stream = pub, n, rate, stream
        self.seqs: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        start = time.monotonic()
        try:
            for i in range(self.n):
                self.seqs.append(self.pub.publish(pred(self.stream, i)))
                ahead = start + (i + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def figures(pairs: list[tuple[str, int]], expected: set[tuple[str, int]]) -> dict[str, int]:
    """delivered / lost / duplicated, counted by (device, seq) at a subscriber."""
    unique = set(pairs)
    return {
        "delivered": len(unique & expected),
        "lost": len(expected - unique),
        "duplicated": len(pairs) - len(unique),
        "unexpected": len(unique - expected),
    }


def first_arrival_order(pairs: list[tuple[str, int]]) -> list[int]:
    """Seqs in the order they first arrived (later re-sends ignored)."""
    seen: set[tuple[str, int]] = set()
    order = []
    for p in pairs:
        if p not in seen:
            seen.add(p)
            order.append(p[1])
    return order


def report_figures(name: str, figs: Mapping[str, object]) -> None:
    """Print the figures a user would ask for (pytest -s shows them; -rA lists them)."""
    print(f"\nFIGURES {name}: {json.dumps(figs)}")
