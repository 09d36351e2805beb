"""Input pooling (`--pool K`): the model sees the mean of each K consecutive readings, stepping once per K.

On long recordings (hundreds to thousands of readings) a recurrent network must carry what matters across
every step; averaging K readings into one step shortens that K times. The device does the same from each
stream's reset (`edge_runtime.stream.cadence`), so every recording, training, validation and test alike,
is pooled here in full chunks only: a trailing part chunk is what the device would still be collecting and
never steps on, so it is dropped. Each pooled step carries the time and label of its chunk's last reading,
the reading at which the device makes that step's prediction; a label on a reading of the trailing part (a
recording's label sits on its last reading) moves to the last step, the last prediction the device makes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgernn.errors import ConfigError, DataError
from trainer.table import Series, Table
from trainer.tasks import task_for

MAX_POOL = 1_000_000  # the manifest's bound


def check_pool(pool: int, *, task: str, bidirectional: bool, tokens: bool) -> None:
    """A one-line ConfigError for a pool the device cannot run."""
    if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= MAX_POOL:
        raise ConfigError(f"pool must be a whole number of readings from 1 to {MAX_POOL:,} (1: off), got {pool!r}")
    if pool == 1:
        return
    if not task_for(task).poolable:
        raise ConfigError(f"pool {pool} averages readings for classification; task {task!r} needs pool 1")
    if tokens:
        raise ConfigError(f"pool {pool} averages numeric readings; a token model needs pool 1")
    if bidirectional:
        raise ConfigError(f"pool {pool} steps a streaming model; a bidirectional (window-mode) model needs pool 1")


def pool_series(s: Series, k: int) -> Series:
    """Series of L readings -> L // k steps: the mean of each full chunk of k, at its last reading."""
    steps = len(s) // k
    ends = np.arange(steps) * k + (k - 1)  # (steps,) index of each chunk's last reading
    x = s.x[: steps * k].astype(np.float64).reshape(steps, k, -1).mean(axis=1).astype(np.float32)  # (steps, C)
    return replace(
        s,
        x=x,
        t=s.t[ends],
        label=None if s.label is None else _pool_labels(s.label, k, steps),
        target=None if s.target is None else s.target[ends],
        anomaly=None if s.anomaly is None else s.anomaly[ends],
    )


def _pool_labels(label: np.ndarray, k: int, steps: int) -> np.ndarray:
    """(L,) labels, None where unlabelled -> (steps,): each step the last label given in its chunk."""
    out = np.full(steps, None, object)
    given = [i for i, v in enumerate(label.tolist()) if v is not None]
    for i in given:  # in order: a later label wins its step
        out[min(i // k, steps - 1)] = label[i]
    return out


def pool_table(table: Table, k: int, what: str = "training data") -> Table:
    """Every series of `table` pooled by k; a DataError naming the shortest when one is under k readings."""
    if k == 1:
        return table
    short = [s for s in table.series if len(s) < k]
    if short:
        shortest = min(short, key=len)
        raise DataError(
            f"pool {k}: the {what} has {len(short)} series shorter than {k} readings (shortest: "
            f"{shortest.name!r}, {len(shortest)}); the device would never step on them: use --pool "
            f"{max(1, len(shortest))} or less"
        )
    # sample_rate stays the readings' rate: the device's readings, which it pools itself
    return replace(table, series=[pool_series(s, k) for s in table.series])


def raw_ranges(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """(C,) min and max of the raw readings: the device checks raw readings, not pool means, against them."""
    x = np.concatenate([s.x for s in table.series], axis=0)  # (sum L, C)
    return x.min(axis=0), x.max(axis=0)
