"""JSON payloads for a whole `PredictionBatch` in a few bulk calls, byte for byte what `Prediction.to_json` writes.

A fleet or gateway publishing every reading pays for the payloads more than for the model: building a
`Prediction` and serialising its dict cost 5-15 µs a reading here. This serialises each column once for the
batch with the wire format's encoder (`edge_runtime.stream.jsontext`) and cuts the text into rows; a row becomes a
`RenderedPrediction` whose payload, given a seq, is one bytes concatenation.

Rows holding a non-finite float (written as null) are built through `Prediction`, so the two paths can never
disagree; tests compare both byte for byte for every task.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from edge_runtime.stream.jsontext import dumps

if TYPE_CHECKING:
    from edge_runtime.stream.batch import PredictionBatch


class RenderedPrediction:
    """A prediction already serialised except for its seq, which the publisher's outbox assigns."""

    __slots__ = ("stream", "tail")

    def __init__(self, stream: str, tail: bytes) -> None:
        self.stream = stream
        self.tail = tail  # the JSON object after `{"seq":N,`

    def payload(self, seq: int) -> bytes:
        return b'{"seq":%d,' % seq + self.tail

    def to_json(self, seq: int = 0) -> str:
        return self.payload(seq).decode()


@lru_cache(maxsize=65536)
def _quoted(s: str) -> str:
    return dumps(s).decode()


def _text(a: np.ndarray) -> str:
    """Floats as the JSON text of their nested lists: `[[1.5,2.0],[3.0,4.0]]`."""
    return dumps(np.asarray(a, np.float64).tolist()).decode()


def _cells(a: np.ndarray) -> list[str]:
    """(M,) floats -> their JSON texts (finite values only)."""
    if not len(a):
        return []
    return _text(a)[1:-1].split(",")


def _nested(a: np.ndarray) -> list[str]:
    """(M, O) or (M, O, 2) floats -> one JSON array text per row (finite values only)."""
    if not len(a):
        return []
    depth = a.ndim - 1  # brackets around a row's innermost values
    text = _text(a)
    # "[[a,b],[c,d]]" -> "a,b],[c,d" -> rows "a,b" and "c,d", each re-wrapped
    inner = text[depth + 1 : -(depth + 1)]
    return ["[" * depth + r + "]" * depth for r in inner.split("]" * depth + "," + "[" * depth)]


def render_batch(
    batch: PredictionBatch, entries: np.ndarray, latency_us: np.ndarray | None = None
) -> list[RenderedPrediction]:
    """The predictions of `entries` (indices into the batch that made one), with `latency_us` per entry
    (default: the batch's), serialised in bulk."""
    entries = np.asarray(entries, np.int64)
    rows = batch.rows[entries]  # (K,)
    if (rows < 0).any():
        raise ValueError("render_batch: an entry without a prediction was asked for")
    k = len(rows)
    lat = np.full(k, batch.latency_us, np.float64) if latency_us is None else np.asarray(latency_us, np.float64)
    values = batch.values[rows]  # (K, O)
    times = batch.times[rows].astype(np.float64)
    ok = np.isfinite(values).all(axis=1) & np.isfinite(times) & np.isfinite(lat)
    prob: np.ndarray | None = None
    if batch.label_index is not None:
        lab = batch.label_index[rows]
        if batch.probability is not None:
            prob = batch.probability[rows].astype(np.float64)
        else:
            prob = values.astype(np.float64)[np.arange(k), lab]
        ok &= np.isfinite(prob)
    score: np.ndarray | None = None
    if batch.anomaly is not None:
        score = batch.anomaly[rows].astype(np.float64)
        ok &= ~np.isinf(score)  # NaN means "no score" and is left out, as in Prediction
    bounds: np.ndarray | None = None
    if batch.half_width is not None:
        v, h = values.astype(np.float64), np.asarray(batch.half_width, np.float64)
        bounds = np.stack([v - h, v + h], axis=-1)  # (K, O, 2): what Prediction computes per value
        ok &= np.isfinite(bounds).all(axis=(1, 2))
    # every column as text for the finite rows, in bulk; a row's tail is its columns joined
    good = np.flatnonzero(ok)
    gi, gr = entries[good].tolist(), rows[good].tolist()
    quoted = [_quoted(batch.stream_ids[i]) for i in gi]
    cols: list[list[str]] = [
        [
            f'"time":{t},"stream":{q},"values":{v}'
            for t, q, v in zip(_cells(times[good]), quoted, _nested(values[good]), strict=True)
        ]
    ]
    if prob is not None:
        names = [_quoted(batch.labels[j] if batch.labels else str(j)) for j in lab[good].tolist()]
        cols.append([f',"label":{n},"probability":{p}' for n, p in zip(names, _cells(prob[good]), strict=True)])
    if score is not None:
        sg = score[good]
        texts, hits = _cells(np.nan_to_num(sg, nan=0.0)), batch.is_anomaly(rows[good]).tolist()
        cols.append(
            [
                "" if s != s else f',"anomaly":{t},"is_anomaly":{"true" if h else "false"}'
                for s, t, h in zip(sg.tolist(), texts, hits, strict=True)
            ]
        )
    if bounds is not None:
        cols.append([f',"interval":{t}' for t in _nested(bounds[good])])
    cols.append(
        [
            f',"latency_us":{t},"model":{_quoted(batch.model)},"flags":{f}}}'
            for t, f in zip(_cells(lat[good]), _flag_texts(batch, gr), strict=True)
        ]
    )
    out: list[RenderedPrediction | None] = [None] * k
    for pos, i, parts in zip(good.tolist(), gi, zip(*cols, strict=True), strict=True):
        out[pos] = RenderedPrediction(batch.stream_ids[i], "".join(parts).encode())
    for pos in np.flatnonzero(~ok).tolist():  # a non-finite float: as Prediction writes it
        i = int(entries[pos])
        pred = batch[i]
        assert pred is not None
        pred.latency_us = float(lat[pos])
        text = pred.to_json()
        out[pos] = RenderedPrediction(batch.stream_ids[i], text[text.index(",") + 1 :].encode())
    return out  # type: ignore[return-value]  # every position was filled


def _flag_texts(batch: PredictionBatch, rows: list[int]) -> list[str]:
    """The flags array of each row, as JSON text; most rows have none."""
    warming = batch.warming
    if not batch.flags and (warming is None or not warming.any()):
        return ["[]"] * len(rows)
    out = []
    for r in rows:
        flags = list(batch.flags.get(r, ()))
        if warming is not None and warming[r]:
            flags.append("warming_up")
        out.append(dumps(flags).decode() if flags else "[]")
    return out
