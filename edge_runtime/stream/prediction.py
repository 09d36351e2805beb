"""What the device emits for each reading: a `Prediction`, serialised as one JSON object.

The JSON form (`Prediction.to_json`) is the schema documented in docs/prediction.schema.json and
published on `<prefix>/<device>/prediction`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_runtime.stream.jsontext import dumps


class Publishable(Protocol):
    """What a publisher sends: a `Prediction`, or one already serialised in bulk (`render.RenderedPrediction`)."""

    stream: str

    def payload(self, seq: int) -> bytes:
        """The JSON object published, carrying `seq` (given by the publisher's outbox)."""
        ...


@dataclass
class Prediction:
    seq: int  # per stream, given by the publisher when it is published (0 until then): `payload(seq)`
    time: float  # the reading's timestamp, seconds since the epoch
    stream: str  # device or stream id
    values: list[float]  # class probabilities, raw-unit forecast, or next-token probabilities
    label: str | None = None  # classify / generate: the most probable class or token
    probability: float | None = None  # of that label
    anomaly: float | None = None  # anomaly score: RMS of forecast residuals in residual std units
    is_anomaly: bool | None = None  # score >= the manifest's threshold, or its alarm rule's state
    interval: list[list[float]] | None = None  # forecast: [low, high] per value, raw units
    latency_us: float = 0.0  # validate + scale + step + postprocess, this reading
    model: str = ""  # sha256 prefix of the artifact that computed it
    flags: list[str] = field(default_factory=list)  # e.g. "warming_up", "imputed:ax", "state_reset"

    def to_dict(self) -> dict[str, Any]:
        # shallow on purpose: asdict() deep-copies every list, the largest cost of a publish when profiled
        return {k: v for k, v in vars(self).items() if v is not None}

    def to_json(self) -> str:
        """Compact JSON; a non-finite number (a model that produced NaN) is null (`edge_runtime.stream.jsontext`)."""
        return dumps(self.to_dict()).decode()

    def payload(self, seq: int) -> bytes:
        """Set `seq` and serialise (the `Publishable` protocol)."""
        self.seq = seq
        return dumps(self.to_dict())
