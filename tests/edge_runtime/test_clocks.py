"""Which clock a reading's time comes from (edge_runtime/stream/clock.py), whatever the batching and timing.

A reading without a time of its own takes this device's clock when it arrived, not when the loop got round
to it; a stream mixing readings with and without their own time stays on its readings' clock (`no_time`),
so an offset between the two clocks is never a gap or a clock step. Timings are made by construction: a
fake wall clock, batches of chosen sizes, a loop that is busy for seconds between two batches.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge_runtime.device.loop import Runner
from edge_runtime.device.sources import MqttSource, Record, SourceStats, Stopper
from edge_runtime.stream.predictor import Predictor
from tests.edge_runtime.conftest import FEATURES, OFFSET, make_model, numpy_bundle

HOUR_AGO = time.time() - 3600.0  # the sensors' clock: an hour behind this device's (a time-zone slip)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return numpy_bundle(tmp_path_factory.mktemp("clocks") / "b", make_model())  # 10 Hz: max gap 1 s


def _reading(rng: np.random.Generator) -> dict[str, float]:
    return {f: float(v) for f, v in zip(FEATURES, rng.normal(OFFSET, 0.5), strict=True)}


def _mixed(streams: int = 5, per_stream: int = 20) -> list[Record]:
    """Readings of `streams` sensors, interleaved, 0.1 s apart on the sensors' clock; every fifth one of a
    stream comes without its time (its first one always with)."""
    rng = np.random.default_rng(3)
    out = []
    for k in range(per_stream):
        for s in range(streams):
            t = None if k % 5 == 4 else HOUR_AGO + 0.1 * k
            out.append(Record(f"s{s}", t, _reading(rng)))
    return out


def _loop(bundle: Path, batches: list[list[Record]], **kw) -> tuple[Predictor, list]:
    """`edgernn run`'s loop over the batches as a source yields them; the predictions it made."""
    runner = Runner(SimpleNamespace(source="mqtt:x", rate="max", limit=None, quiet=True))
    made: list = []
    runner.sink = SimpleNamespace(publish=made.append)
    p = Predictor.load(bundle, backend="numpy", **kw)
    runner._loop(p, batches, Stopper())
    return p, made


@pytest.mark.parametrize("batch", [1, 2, 7, 50, 100])
def test_a_stream_mixing_own_times_and_none_is_counted_no_time_at_every_batch_size(bundle, batch):
    records = _mixed()
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    p, made = _loop(bundle, batches)
    c = p.counters
    untimed = sum(r.t is None for r in records)  # 20: four a stream, each after a timed one
    assert c["bad"] == {"no_time": untimed}  # never a gap (an hour ahead) then a clock_step (an hour back)
    assert c["state_resets"] == 0 and c["predictions"] == len(records) == len(made)
    by_stream: dict[str, list] = {}
    for pred in made:
        by_stream.setdefault(pred.stream, []).append(pred)
    for preds in by_stream.values():
        times = [q.time for q in preds]
        assert times == sorted(times) and max(times) < HOUR_AGO + 10  # on the sensor's clock, in order
        for k, q in enumerate(preds):
            assert ("no_time" in q.flags) == (k % 5 == 4)
            if k % 5 == 4:
                assert q.time == preds[k - 1].time  # the stream's last own time


def test_the_same_mixed_stream_gives_the_same_predictions_whatever_the_batching(bundle):
    records = _mixed()
    values = []
    for batch in (1, 5, 100):
        _, made = _loop(bundle, [records[i : i + batch] for i in range(0, len(records), batch)])
        made.sort(key=lambda q: (q.stream, q.time, "no_time" in q.flags))
        values.append(np.array([q.values for q in made]))
    np.testing.assert_allclose(values[1], values[0], atol=1e-5)
    np.testing.assert_allclose(values[2], values[0], atol=1e-5)


def test_no_time_skip_drops_them_and_counts_them(bundle):
    records = _mixed()
    p, made = _loop(bundle, [records[i : i + 7] for i in range(0, len(records), 7)], policies={"no_time": "skip"})
    c = p.counters
    assert c["bad"] == {"no_time": 20} and c["skipped"] == 20 and len(made) == c["predictions"] == 80


@pytest.mark.parametrize("many", [False, True])
def test_a_stream_on_the_device_clock_that_starts_sending_its_own_times_keeps_its_state(bundle, many):
    """A sensor whose clock is set after boot: its readings first come without a time, then with its own
    (an hour behind this device's). Its own timeline starts there: no clock step, no reset."""
    p = Predictor.load(bundle, backend="numpy")
    rng = np.random.default_rng(4)
    for k in range(10):
        t = None if k < 5 else HOUR_AGO + 0.1 * k
        if many:
            (pred,) = p.step_many([_reading(rng)], ["s"], t=[t])
        else:
            pred = p.step_one(_reading(rng), t=t, stream="s")
        assert pred is not None and not pred.flags, pred
    assert p.counters["bad"] == {} and p.counters["state_resets"] == 0


def _queued_source(clock: list[float], arrivals: list[tuple[float, object]]) -> MqttSource:
    """A gateway source whose subscription received these (time, payload) messages, one batch each; no broker."""
    src = object.__new__(MqttSource)
    src.features, src.stats, src.stopper, src.max_batch = list(FEATURES), SourceStats(), Stopper(), 1
    src.queue, src._empty, src._full, src.dropped = queue.Queue(), queue.Empty, queue.Full, 0
    src.client = SimpleNamespace(loop_stop=lambda: None, disconnect=lambda: None)  # type: ignore[assignment]
    for at, payload in arrivals:
        clock[0] = at
        msg = SimpleNamespace(topic="edgernn/u/reading", payload=json.dumps(payload).encode())
        src._on_message(None, None, msg)  # paho's network thread, as each message arrives
    return src


def test_a_loop_busy_for_seconds_does_not_turn_its_own_delay_into_a_gap(bundle, monkeypatch):
    """Readings without a time arrive 0.1 s apart; the loop steps each one 5 s after the last (a checkpoint
    on a slow SD card, a backlog). They are 0.1 s apart on the device's clock: no gap, no state reset."""
    import time as time_module

    clock = [1.7e9]
    monkeypatch.setattr(time_module, "time", lambda: clock[0])
    rng = np.random.default_rng(5)
    src = _queued_source(clock, [(1.7e9 + 0.1 * k, [*_reading(rng).values()]) for k in range(4)])

    def busy() -> object:
        for n, batch in enumerate(src, 1):
            yield batch
            clock[0] += 5.0  # the loop's work after this batch
            if n == 4:
                return

    p, made = _loop(bundle, busy())  # type: ignore[arg-type]
    assert p.counters["bad"] == {} and p.counters["state_resets"] == 0
    assert [round(q.time - 1.7e9, 3) for q in made] == [0.0, 0.1, 0.2, 0.3]  # when each arrived


def test_a_checkpoint_from_before_streams_kept_their_clock_is_restored(bundle, tmp_path):
    p = Predictor.load(bundle, backend="numpy", state_dir=tmp_path)
    p.step_one(dict(zip(FEATURES, OFFSET, strict=True)), t=time.time(), stream="s")
    path = p.save_state()
    assert path is not None
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if k != "own_t"}
    with path.open("wb") as f:
        np.savez(f, **old)
    q = Predictor.load(bundle, backend="numpy", state_dir=tmp_path)
    assert q.restored is not None and q.restored[0] == 1 and q.counters["stale_state"] == 0
