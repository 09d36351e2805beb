"""`Parts`: the collaborators of one `Predictor`, handed to each of its stepping paths (one, many, block).

Each path keeps references to the parts it uses; none of them holds another's state. Mutable figures live
in their owner: state and per-stream memory in the table, counts in `Counters`, the future-time bound in
`TimeRules`, readings since the last checkpoint in `Checkpoints`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.backends.base import Backend
from edge_runtime.stream.cadence import Cadence
from edge_runtime.stream.checkpoint import Checkpoints
from edge_runtime.stream.clock import TimeRules
from edge_runtime.stream.counters import Counters
from edge_runtime.stream.guard import InputGuard
from edge_runtime.stream.heads import Head
from edge_runtime.stream.table import StreamTable


@dataclass(frozen=True)
class Parts:
    table: StreamTable  # every stream's state and per-stream memory
    guard: InputGuard  # value checks, repair and scaling
    clock: TimeRules  # time checks
    cadence: Cadence  # warm-up and window hops
    backend: Backend  # the model: (x, state) -> (y, state)
    head: Head  # the task: outputs -> what a prediction says
    counts: Counters
    checkpoints: Checkpoints
    model: str  # sha256 prefix of the artifact, in every prediction
