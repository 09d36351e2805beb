"""The bundle manifest: the single source of truth a device needs (NumPy and the standard library only).

A bundle is a directory:
    manifest.json     this schema (documented as JSON Schema in `manifest.schema.json`)
    model.onnx, model.int8.onnx, model.tflite, model.int8.tflite, model.b<N>.tflite, weights.npz, ...
    golden.npz        a short raw input stream and every artifact's expected outputs
    heldout.npz       held-out test readings (raw units, capped), replayed by `edgernn simulate` (`replay`)

Every artifact is a *step graph* `(x_t, state_in) -> (y_t, state_out)` with these tensor names:
    inputs  x (B, C) float32 scaled features, or (B,) int64 tokens; then `<name>_in` per state tensor
    outputs y (B, O) float32 (logits, scaled forecast); then `<name>_out` per state tensor
State tensors are named by `ModelConfig.state_names` (`h`, and `c` for an LSTM; then `m` and `n` for
readout "mean": the running mean of the top layer's output since the reset, and the readings counted,
repeated to the common shape; `m` alone for readout "max", the running maximum), each of shape
(num_layers * directions, B, hidden). In window mode (bidirectional models) the graph is
`x (B, T, C) -> y (B, O)` with no state; the runtime keeps a ring buffer of the last T readings.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from edgernn.config import ModelConfig
from edgernn.errors import BundleError, ConfigError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
GOLDEN_FILE = "golden.npz"
ARTIFACT_FORMATS = ("onnx", "tflite", "numpy")
PRECISIONS = ("fp32", "int8")
TARGET_MODES = ("level", "delta")


@dataclass
class ScalerSpec:
    """`scaled = (raw - offset) / scale`, per feature."""

    kind: str
    offset: list[float]
    scale: list[float]


@dataclass
class InputSpec:
    features: list[str]
    dtype: str  # "float32" | "int64" (tokens)
    scaler: ScalerSpec | None
    ranges: dict[str, list[float]]  # {"min": [...], "max": [...]} raw units, seen in training
    sample_rate: float | None = None  # readings per second
    vocabulary: list[str] = field(default_factory=list)


@dataclass
class OutputSpec:
    task: str  # classify | forecast | anomaly | generate
    per_step: bool = False
    labels: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    horizon: int = 1
    inverse: ScalerSpec | None = None  # forecast outputs back to raw units, per target
    # forecast / anomaly: "level" (inverse gives the target) or "delta" (inverse gives the change from the
    # latest reading, whose target values, input features, the runtime adds back; see stream/heads/forecast.py)
    target_mode: str = "level"
    # anomaly: {"threshold": float, "false_alarm_rate": float, "score": "forecast-residual", "sigma": [...],
    #           "alarm": {"rule": "ewma", "readings", "threshold", "clear", "start", ...} (optional, trainer/alarm.py)}
    anomaly: dict[str, Any] | None = None
    # forecast: {"level": 0.9, "half_width": [O floats, raw units]}
    interval: dict[str, Any] | None = None


@dataclass
class StateSpec:
    name: str
    shape: list[int | str]  # e.g. [2, "batch", 64]
    dtype: str = "float32"


@dataclass
class WindowSpec:
    """Window mode: re-run the whole window of `length` readings every `hop` readings."""

    length: int
    hop: int = 1


@dataclass
class Artifact:
    id: str  # e.g. "onnx-fp32", "tflite-int8-b1", "numpy-int8"
    file: str  # path relative to the bundle, never leaving it
    format: str  # onnx | tflite | numpy
    precision: str  # fp32 | int8
    sha256: str = ""
    bytes: int = 0
    batch: list[int] | None = None  # fixed batch sizes; None: dynamic batch axis
    opset: int | None = None
    quantized: list[str] = field(default_factory=list)  # what is int8 (e.g. "LSTM weights", "head")
    kept_float: list[str] = field(default_factory=list)  # what stayed float, and why
    tolerance: float = 1e-5  # max abs deviation from PyTorch it is held to
    status: str = "ok"  # ok | out_of_tolerance | failed
    reason: str = ""  # why it failed or is out of tolerance

    @property
    def usable(self) -> bool:
        return self.status != "failed" and bool(self.file)


@dataclass
class Manifest:
    model: ModelConfig
    input: InputSpec
    output: OutputSpec
    state: list[StateSpec]
    artifacts: list[Artifact]
    mode: str = "stream"  # stream | window
    window: WindowSpec | None = None
    pool: int = 1  # the model steps once per `pool` readings, on their mean (1: every reading)
    warmup: dict[str, Any] = field(default_factory=lambda: {"readings": 0})
    quality: dict[str, Any] = field(default_factory=dict)  # per artifact id, and "pytorch"
    golden: dict[str, Any] = field(default_factory=dict)  # {"file": "golden.npz", "readings": L}
    replay: dict[str, Any] = field(default_factory=dict)  # {"file": "heldout.npz", ...}: readings to simulate on
    provenance: dict[str, Any] = field(default_factory=dict)
    format: dict[str, Any] = field(default_factory=lambda: {"version": FORMAT_VERSION})

    def artifact(self, id: str) -> Artifact:
        for a in self.artifacts:
            if a.id == id:
                return a
        raise BundleError(f"no artifact {id!r} in this bundle; it has: {', '.join(self.artifact_ids())}")

    def artifact_ids(self) -> list[str]:
        return [a.id for a in self.artifacts]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    def write(self, bundle_dir: Path) -> Path:
        path = Path(bundle_dir) / MANIFEST_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        try:
            return _parse(d)
        except BundleError:
            raise
        except (ConfigError, TypeError, KeyError, ValueError) as exc:
            raise BundleError(f"invalid manifest: {exc}") from exc

    @classmethod
    def load(cls, bundle_dir: str | Path) -> Manifest:
        """Read and validate `manifest.json`; check paths stay inside the bundle. Does not hash files."""
        path = Path(bundle_dir) / MANIFEST_FILE
        if not path.is_file():
            raise BundleError(f"{bundle_dir} is not a bundle: no {MANIFEST_FILE} in it")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"cannot read {path}: {exc}") from exc
        return cls.from_dict(data)


def _fields(cls: type, d: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise BundleError(f"invalid manifest: {where} must be an object, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise BundleError(f"invalid manifest: unknown keys in {where}: {unknown}")
    return d


def _scaler(d: dict[str, Any] | None, where: str) -> ScalerSpec | None:
    return None if d is None else ScalerSpec(**_fields(ScalerSpec, d, where))


def safe_relative(path: str) -> str:
    """A bundle-relative POSIX path that cannot leave the bundle, or BundleError."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise BundleError(f"artifact path {path!r} leaves the bundle; only plain relative paths are allowed")
    return path


def _parse(d: dict[str, Any]) -> Manifest:
    d = _fields(Manifest, d, "manifest")
    fmt = d.get("format", {})
    version = fmt.get("version") if isinstance(fmt, dict) else None
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {version!r} is not supported by this edgernn "
            f"(it reads version {FORMAT_VERSION}); re-export the bundle or upgrade edgernn"
        )
    inp = dict(_fields(InputSpec, d["input"], "input"))
    inp["scaler"] = _scaler(inp.get("scaler"), "input.scaler")
    out = dict(_fields(OutputSpec, d["output"], "output"))
    out["inverse"] = _scaler(out.get("inverse"), "output.inverse")
    artifacts = [Artifact(**_fields(Artifact, a, "artifacts[]")) for a in d["artifacts"]]
    for a in artifacts:
        if a.format not in ARTIFACT_FORMATS:
            raise BundleError(f"artifact {a.id!r}: format {a.format!r}; allowed: {', '.join(ARTIFACT_FORMATS)}")
        if a.precision not in PRECISIONS:
            raise BundleError(f"artifact {a.id!r}: precision {a.precision!r}; allowed: {', '.join(PRECISIONS)}")
        if a.file:
            safe_relative(a.file)
    if len({a.id for a in artifacts}) != len(artifacts):
        raise BundleError("invalid manifest: artifact ids are not unique")
    golden = d.get("golden") or {}
    if golden.get("file"):
        safe_relative(golden["file"])
    replay = d.get("replay") or {}
    if replay.get("file"):
        safe_relative(replay["file"])
    window = d.get("window")
    m = Manifest(
        model=ModelConfig.from_dict(d["model"]),
        input=InputSpec(**inp),
        output=OutputSpec(**out),
        state=[StateSpec(**_fields(StateSpec, s, "state[]")) for s in d["state"]],
        artifacts=artifacts,
        mode=d.get("mode", "stream"),
        window=None if window is None else WindowSpec(**_fields(WindowSpec, window, "window")),
        pool=d.get("pool", 1),
        warmup=d.get("warmup", {"readings": 0}),
        quality=d.get("quality", {}),
        golden=golden,
        replay=replay,
        provenance=d.get("provenance", {}),
        format=fmt,
    )
    if m.output.target_mode not in TARGET_MODES:
        raise BundleError(f"invalid manifest: output.target_mode {m.output.target_mode!r}; allowed: level, delta")
    if m.mode not in ("stream", "window"):
        raise BundleError(f"invalid manifest: mode {m.mode!r}; allowed: stream, window")
    if m.mode == "window" and m.window is None:
        raise BundleError("invalid manifest: mode 'window' needs a window section (length, hop)")
    n_in = 1 if m.model.tokens else m.model.input_size
    if len(m.input.features) != n_in:
        raise BundleError(f"invalid manifest: {len(m.input.features)} input features listed, the model takes {n_in}")
    check_values(m)
    return m


# --- values: every number the runtime sizes something by, checked before anything is sized by it

# Bounds a device model stays far inside; past them a typo (or an attack) would allocate gigabytes.
LIMITS = {
    "input_size": 65_536,
    "hidden_size": 65_536,
    "output_size": 1_000_000,
    "num_layers": 64,
    "horizon": 100_000,
    "vocab_size": 10_000_000,
    "embedding_dim": 65_536,
}
MAX_WINDOW = 1_000_000


def _check_bad(what: str, value: Any, allowed: str) -> BundleError:
    return BundleError(f"invalid manifest: {what} = {_check_short(value)}; allowed: {allowed}")


def _check_short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_int(what: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _check_bad(what, value, f"a whole number from {lo} to {hi:,}")
    return value


def _check_numbers(what: str, values: Any, n: int, *, nonzero: bool = False) -> None:
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} value(s)" if isinstance(values, list) else _check_short(values)
        raise BundleError(f"invalid manifest: {what} has {got}; allowed: {n} numbers, one per {_check_per(what)}")
    for i, v in enumerate(values):
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (nonzero and v == 0):
            allowed = "a finite number other than 0" if nonzero else "a finite number"
            raise _check_bad(f"{what}[{i}]", v, allowed)


def _check_per(what: str) -> str:
    return "target" if what.startswith("output.") else "input feature"


def _check_scaler(what: str, s: ScalerSpec | None, n: int) -> None:
    if s is not None:
        _check_numbers(f"{what}.offset", s.offset, n)
        _check_numbers(f"{what}.scale", s.scale, n, nonzero=True)


def check_values(m: Manifest) -> None:
    """Bounds and lengths of every value the runtime sizes something by; BundleError naming the first bad one."""
    cfg = m.model
    for name, hi in LIMITS.items():
        lo = 0 if name in ("vocab_size", "embedding_dim") or (name == "input_size" and cfg.tokens) else 1
        _check_int(f"model.{name}", getattr(cfg, name), lo, hi)
    n_in = len(m.input.features)
    if not cfg.tokens:
        _check_scaler("input.scaler", m.input.scaler, n_in)
        for key in ("min", "max"):
            if key in (m.input.ranges or {}):
                _check_numbers(f"input.ranges.{key}", m.input.ranges[key], n_in)
    rate = m.input.sample_rate
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf):
        raise _check_bad("input.sample_rate", rate, "readings per second, a finite number > 0, or null")
    out = m.output
    _check_int("output.horizon", out.horizon, 1, LIMITS["horizon"])
    if out.labels and len(out.labels) != cfg.output_size:
        raise BundleError(
            f"invalid manifest: output.labels has {len(out.labels)} labels; allowed: {cfg.output_size} "
            "(model.output_size)"
        )
    if out.task == "forecast" and out.targets and len(out.targets) * out.horizon != cfg.output_size:
        raise BundleError(
            f"invalid manifest: {len(out.targets)} output.targets x horizon {out.horizon} != model.output_size "
            f"{cfg.output_size}; allowed: targets x horizon = output_size"
        )
    if out.targets:
        _check_scaler("output.inverse", out.inverse, len(out.targets))
    if out.interval and "half_width" in out.interval:
        _check_numbers("output.interval.half_width", out.interval["half_width"], cfg.output_size)
    if m.window is not None:
        length = _check_int("window.length", m.window.length, 1, MAX_WINDOW)
        _check_int("window.hop", m.window.hop, 1, length)
    _check_int("pool", m.pool, 1, MAX_WINDOW)
    if m.pool > 1 and m.mode == "window":
        raise BundleError(f"invalid manifest: pool {m.pool} with mode 'window'; allowed: pool 1 in window mode")
    if m.pool > 1 and m.output.task != "classify":
        raise BundleError(
            f"invalid manifest: pool {m.pool} for task {m.output.task!r}; allowed: pool 1 (pooling is for classify)"
        )
    if m.pool > 1 and cfg.tokens:
        raise BundleError(f"invalid manifest: pool {m.pool} for a token model; allowed: pool 1 (tokens do not average)")
    _check_int("warmup.readings", (m.warmup or {}).get("readings", 0) or 0, 0, 10**9)
    if m.mode == "stream":
        want = [cfg.num_layers * cfg.directions, "batch", cfg.hidden_size]
        names = [s.name for s in m.state]
        if names != list(cfg.state_names):
            raise _check_bad("state names", names, f"{list(cfg.state_names)} for a {cfg.cell} model")
        for s in m.state:
            if list(s.shape) != want:
                allowed = f"{want} (layers x directions, batch, hidden_size)"
                raise _check_bad(f"state {s.name!r} shape", s.shape, allowed)
