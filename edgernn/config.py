"""`ModelConfig`: the one description of a model's shape (nanoGPT's `GPTConfig`, for recurrent nets).

It is a plain dataclass of the standard library, so the trainer (torch), the exporter and the device
runtime (NumPy only) all read the same class: the checkpoint stores `asdict(config)`, the bundle
manifest stores it under `model`, and `ModelConfig.from_dict` rebuilds it on either side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edgernn.errors import ConfigError

CELLS = ("rnn", "lstm", "gru")
TASKS = ("classify", "forecast", "anomaly", "generate")
#: what the head reads: "last", the top layer's state at this reading; "mean", the running mean of the top
#: layer's states since the last reset (carried as two more state tensors, so every backend streams it);
#: "max", their running maximum since the reset, from the reset's zero (one more state tensor)
READOUTS = ("last", "mean", "max")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a recurrent model: `x (B, T, C) -> rnn -> head -> y (B, T, output_size)`.

    The head is applied at every step, so the same network serves many-to-one training (the last
    step's output is used) and the device, which steps one reading at a time and emits `y_t` each step.
    """

    cell: str
    input_size: int  # features per reading (continuous input); ignored for token input
    hidden_size: int
    output_size: int  # classes, targets * horizon, or the vocabulary size
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # between stacked layers, training only
    task: str = "classify"
    per_step: bool = False  # many-to-many: a target for every reading
    vocab_size: int = 0  # > 0: integer tokens through an embedding of `embedding_dim`
    embedding_dim: int = 0
    horizon: int = 1  # forecast: steps ahead predicted at once (direct multi-output)
    readout: str = "last"  # one of READOUTS


    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"unsupported cell {self.cell!r}; supported: {', '.join(CELLS)}")
        if self.task not in TASKS:
            raise ConfigError(f"unsupported task {self.task!r}; supported: {', '.join(TASKS)}")
        for name in ("hidden_size", "output_size", "num_layers", "horizon"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.vocab_size < 0 or self.embedding_dim < 0:
            raise ConfigError("vocab_size and embedding_dim must be >= 0")
        if self.vocab_size and self.embedding_dim < 1:
            raise ConfigError("a token model (vocab_size > 0) needs embedding_dim >= 1")
        if not self.vocab_size and self.input_size < 1:
            raise ConfigError(f"input_size must be >= 1, got {self.input_size!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.readout not in READOUTS:
            raise ConfigError(f"unsupported readout {self.readout!r}; supported: {', '.join(READOUTS)}")
        if self.readout != "last" and self.bidirectional:
            raise ConfigError(
                f"readout {self.readout!r} is a running statistic over a stream; a bidirectional model runs in "
                "window mode and reads its last step: use readout 'last'"
            )
        if self.task == "generate" and not self.vocab_size:
            raise ConfigError("task 'generate' needs a token model (vocab_size > 0)")

    @property
    def tokens(self) -> bool:
        """True when the input is one integer token per step rather than a feature vector."""
        return self.vocab_size > 0

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def rnn_input_size(self) -> int:
        """Width of what the first recurrent layer sees: features, or the embedding."""
        return self.embedding_dim if self.tokens else self.input_size

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the state tensors, each of shape (num_layers * directions, B, hidden).

        readout "mean" adds `m`, the running mean of the top layer's output since the reset, and `n`, the
        readings counted since then; both repeat over the first axis (and `n` over hidden), because every
        state tensor has the one shape the runtime's stream table keeps. readout "max" adds `m`, the running
        maximum.
        """
        names = self.recurrent_state_names
        extra = {"last": (), "mean": ("m", "n"), "max": ("m",)}[self.readout]
        return (*names, *extra)

    @property
    def recurrent_state_names(self) -> tuple[str, ...]:
        """The state tensors of the recurrent cell itself (`h`, and `c` for an LSTM)."""
        return ("h", "c") if self.cell == "lstm" else ("h",)

    @property
    def streamable(self) -> bool:
        """Bidirectional models need the future, so they run in window mode instead of streaming."""
        return not self.bidirectional

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ModelConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A settings file (device config, MQTT config, scenario) as a dict. One owner of how every such file is
    read: a ConfigError naming `what`, the file and the cause, never a traceback."""
    import tomllib  # only when a file is read

    p = Path(path).expanduser()
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(p)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {p} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {p} is not valid TOML: {exc}") from exc
