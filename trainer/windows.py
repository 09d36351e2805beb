"""Batches for the two ways of training: independent windows, and long contiguous streams (TBPTT).

A `Batch` is padded to a rectangle; `mask` says which positions count in the loss. The same per-reading
targets of `trainer.prep` feed both. `last_only` (many-to-one classification, and every bidirectional
model, whose backward half would otherwise read the future) unmasks only the last reading of a window;
otherwise every reading with a target counts. A sequence's single label already sits on its last reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from trainer.prep import Part


@dataclass
class Batch:
    x: np.ndarray  # (B, T, C) float32 scaled features, or (B, T) int64 tokens
    y: np.ndarray  # (B, T) int64 classes / next tokens (-1: none), or (B, T, O) float32 (NaN: none)
    mask: np.ndarray  # (B, T) bool: positions that count in the loss

    def __len__(self) -> int:
        return len(self.x)


def valid_positions(y: np.ndarray) -> np.ndarray:
    """(L,) bool: readings that have a target."""
    return y >= 0 if y.ndim == 1 else np.isfinite(y).any(axis=1)


def count_windows(part: Part, window: int, stride: int, last_only: bool, sequences: bool) -> int:
    return len(_window_index(part, window, stride, last_only, sequences))


def window_batches(
    part: Part,
    *,
    window: int,
    stride: int,
    last_only: bool,
    sequences: bool,
    batch_size: int,
    rng: np.random.Generator | None,
    spread: bool = False,
) -> Iterator[Batch]:
    """Independent windows, each from zero state. Streams are cut into windows of `window` readings every
    `stride`; a sequence is one window by itself. `rng=None` keeps the order (evaluation). `spread`: a
    many-to-one sequence's label counts at every one of its readings, not only its last.
    """
    if sequences:
        yield from _sequence_batches(part, batch_size, rng, spread)
        return
    index = _window_index(part, window, stride, last_only, sequences)
    if rng is not None:
        index = index[rng.permutation(len(index))]
    offsets = np.arange(window)
    for a in range(0, len(index), batch_size):
        rows = index[a : a + batch_size]
        xs, ys = [], []
        for i, start in rows:
            xs.append(part.x[i][start + offsets])
            ys.append(part.y[i][start + offsets])
        y = np.stack(ys)
        mask = np.stack([valid_positions(v) for v in ys])
        if last_only:
            mask[:, :-1] = False
        yield Batch(np.stack(xs), y, mask)


def stream_batches(
    part: Part,
    *,
    segment: int | None,
    chunk: int,
    batch_size: int,
    rng: np.random.Generator | None,
) -> Iterator[Batch]:
    """Contiguous pieces for truncated BPTT, each padded to the batch's longest piece.

    Long streams are cut into pieces of `segment` readings so a batch holds many lanes; the cut points move
    by a random offset each epoch (`rng`) so chunk boundaries do not always fall on the same readings.
    `segment=None` keeps each recording whole (validation, sequences).
    """
    pieces: list[tuple[int, int, int]] = []  # (recording, start, stop)
    for i, x in enumerate(part.x):
        n = len(x)
        if segment is None or n <= segment:
            pieces.append((i, 0, n))
            continue
        shift = int(rng.integers(0, chunk)) if rng is not None else 0
        starts = [0, *range(segment - shift, n, segment)]
        for a, b in zip(starts, [*starts[1:], n], strict=True):
            if b - a >= 2:
                pieces.append((i, a, b))
    order = rng.permutation(len(pieces)) if rng is not None else np.arange(len(pieces))
    for a in range(0, len(order), batch_size):
        yield _pad([pieces[k] for k in order[a : a + batch_size]], part)


def _window_index(part: Part, window: int, stride: int, last_only: bool, sequences: bool) -> np.ndarray:
    """(N, 2) int64 rows of (recording, start) of every window with something to learn."""
    if sequences:
        return np.array([(i, 0) for i, y in enumerate(part.y) if valid_positions(y).any()], dtype=np.int64)
    rows: list[tuple[int, int]] = []
    for i, y in enumerate(part.y):
        n = len(y)
        if n < window:
            continue
        starts = np.arange(0, n - window + 1, stride)
        valid = valid_positions(y)
        if last_only:
            keep = valid[starts + window - 1]
        else:
            csum = np.concatenate([[0], np.cumsum(valid)])
            keep = csum[starts + window] - csum[starts] > 0
        rows.extend((i, int(s)) for s in starts[keep])
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def _sequence_batches(
    part: Part, batch_size: int, rng: np.random.Generator | None, spread: bool = False
) -> Iterator[Batch]:
    # a many-to-one sequence carries its label on its last reading only, so its mask is already right
    index = _window_index(part, 0, 1, False, True)[:, 0]
    if rng is not None:
        index = index[rng.permutation(len(index))]
    for a in range(0, len(index), batch_size):
        batch = _pad([(int(i), 0, len(part.x[i])) for i in index[a : a + batch_size]], part)
        if spread:
            # the label at every reading: a gradient reaches each step directly, not only back from the end
            for r, i in enumerate(index[a : a + batch_size]):
                n = len(part.x[i])
                batch.y[r, :n] = batch.y[r, n - 1]
                batch.mask[r, :n] = batch.y[r, :n] >= 0
        yield batch


def _pad(pieces: list[tuple[int, int, int]], part: Part) -> Batch:
    """Right-pad pieces to one length; padding is masked out (a unidirectional state never reads it)."""
    ys = [part.y[i][a:b] for i, a, b in pieces]
    x = pad([part.x[i][a:b] for i, a, b in pieces])
    return Batch(x, pad(ys, no_target(ys[0])), pad([valid_positions(y) for y in ys]))


def pad(rows: list[np.ndarray], fill: float = 0) -> np.ndarray:
    """Right-pad (L_i, ...) arrays of one dtype into (N, max L_i, ...), `fill` after each row's end."""
    out = np.full((len(rows), max(len(r) for r in rows), *rows[0].shape[1:]), fill, dtype=rows[0].dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def no_target(y: np.ndarray) -> float:
    """The "no target here" value of per-reading targets like y: -1 for classes and tokens, NaN for floats."""
    return -1 if y.dtype.kind == "i" else np.nan
