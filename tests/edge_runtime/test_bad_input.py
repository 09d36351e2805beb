"""Hostile and unlucky input (issue 14): every bad reading is counted by reason, none stops or poisons the loop."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge_runtime.device.sources import MAX_LINE, CsvSource, LineSource, MqttSource, Record, SourceStats, Stopper
from edge_runtime.stream.names import MAX_NAME
from edge_runtime.stream.predictor import Predictor
from edgernn.cli import main
from tests.edge_runtime.conftest import FEATURES, OFFSET, make_model, numpy_bundle

GOOD = dict(zip(FEATURES, OFFSET, strict=True))  # a clean reading, every value the training mean
HOSTILE_NAMES = ["x" * 70_000, "a/b", "x#1", "s+", "", " lead", "bad\nname", "\ud800", "nul\0", "x" * (MAX_NAME + 1)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return numpy_bundle(tmp_path_factory.mktemp("bad") / "b", make_model())  # sample rate 10 Hz: max gap 1 s


def _p(bundle: Path, **kw) -> Predictor:
    return Predictor.load(bundle, backend="numpy", **kw)


# --- 1. stream names ------------------------------------------------------------------------------------------


def test_a_stream_name_no_topic_can_carry_is_a_counted_bad_reading_and_never_a_stream(bundle):
    p = _p(bundle)
    for name in HOSTILE_NAMES:
        assert p.step_one(GOOD, t=1.0, stream=name) is None
    assert p.step_one(GOOD, t=1.0, stream="k" * MAX_NAME) is not None  # the longest allowed name
    assert p.step_one(GOOD, t=1.0, stream="Küche 2") is not None  # printable Unicode, a space inside
    c = p.counters
    assert c["bad"]["bad_stream"] == len(HOSTILE_NAMES) and c["skipped"] == len(HOSTILE_NAMES)
    assert p.streams == ["k" * MAX_NAME, "Küche 2"]


def test_step_many_predicts_the_valid_names_and_counts_the_others(bundle):
    p = _p(bundle)
    ids = ["s1", "a/b", "s2", "x" * 70_000]
    batch = p.step_many([GOOD] * 4, ids, t=[1.0, 1.0, 1.0, 1.0])
    assert [b is not None for b in batch] == [True, False, True, False]
    assert [b.stream for b in batch.predictions()] == ["s1", "s2"]
    assert p.counters["bad"]["bad_stream"] == 2 and p.streams == ["s1", "s2"]
    assert p.counters["readings"] == 4 and p.counters["predictions"] == 2


# --- 2/3. every parse path ends in a count, never a traceback -------------------------------------------------

HOSTILE_LINES = [
    b"[" * 5000,  # RecursionError in json
    b'{"ax": 1' + b"0" * 400 + b', "ay": 1, "az": -2, "temp": 20}',  # 400-digit integer value
    b'{"t": 1' + b"0" * 400 + b', "ax": 0, "ay": 1, "az": -2, "temp": 20}',  # 400-digit integer time
    b'{"\\ud800": 1, "ax": 0, "ay": 1, "az": -2, "temp": 20}',  # a lone surrogate in a key
    b'{"ax": "\\udfff", "ay": 1, "az": -2, "temp": 20}',  # ... and in a value
    b"\xff\xfe garbage \xff",
    b'{"ax": 1e400, "ay": 1, "az": -2, "temp": 20}',
    b"x" * (MAX_LINE + 10),  # longer than the line bound
    b'{"ax": 0, "ay": 1, "az": -2, "temp": 20}',
]


def _run_records(p: Predictor, records: list[Record]) -> list[str]:
    out = []
    for r in records:
        pred = p.step_one(r.reading, t=r.t, stream=r.stream)
        if pred is not None:
            out.append(pred.to_json())  # the published form: must serialise, whatever the input held
    return out


def test_hostile_stdin_lines_are_counted_and_every_prediction_serialises(bundle):
    src = LineSource(io.BytesIO(b"\n".join(HOSTILE_LINES) + b"\n"), FEATURES, stream="dev", stopper=Stopper())
    records = [r for batch in src for r in batch]
    assert src.stats.unparsable == 3  # nested brackets, the \xff line, the over-long line
    p = _p(bundle)
    out = _run_records(p, records)
    c = p.counters
    assert c["readings"] == len(records) == 6
    assert len(out) == 5 and c["bad"]["bad_time"] == 1  # the 400-digit time
    assert c["bad"]["non_finite"] == 2 and c["bad"]["non_number"] == 1 and c["bad"]["extra"] == 1
    flags = [json.loads(line)["flags"] for line in out]
    assert ["extra:\\ud800"] in flags  # the key, escaped: a lone surrogate cannot be UTF-8


def test_a_line_longer_than_the_bound_is_skipped_without_reading_it_whole(bundle):
    class Lines:
        def __init__(self, data: bytes) -> None:
            self.f, self.sizes = io.BytesIO(data), list[int]()

        def readline(self, size: int = -1) -> bytes:
            self.sizes.append(size)
            return self.f.readline(size)

    lines = Lines(b"y" * (20 * MAX_LINE) + b'\n{"ax": 0, "ay": 1, "az": -2, "temp": 20}\n')
    src = LineSource(lines, FEATURES, stream="dev", stopper=Stopper())
    records = [r for batch in src for r in batch]
    assert len(records) == 1 and records[0].reading["ax"] == 0 and src.stats.unparsable == 1
    assert lines.sizes and max(lines.sizes) == MAX_LINE + 1 and min(lines.sizes) > 0  # never "all of it"


def test_hostile_csv_is_counted_row_by_row(bundle, tmp_path, capsys):
    rows = [
        "t,stream,ax,ay,az,temp",
        "1.0,s,0,1,-2,20",
        "1.1,s,\xff,1,-2,20",  # written as invalid UTF-8 below
        "1.2,s," + "9" * 400 + ",1,-2,20",  # 400 digits: inf as a float
        "1.3,s," + "z" * 140_000 + ",1,-2,20",  # a field over csv's 128 KB limit (and the line bound)
        '1.4,s,"0,1,-2,20',  # an unterminated quote
        "inf,s,0,1,-2,20",
        "nan,s,0,1,-2,20",
        "1e20,s,0,1,-2,20",
        "9999-12-31T00:00:00,s,0,1,-2,20",
        "1.5,a/b,0,1,-2,20",
        "1.6,s,0,1,-2,20",
    ]
    path = tmp_path / "bad.csv"
    path.write_bytes("\n".join(rows).encode("utf-8", "surrogateescape").replace("\xff".encode(), b"\xff") + b"\n")
    code = main(["run", str(bundle), "--source", f"csv:{path}", "--backend", "numpy"])
    out, err = capsys.readouterr()
    assert code == 0, err
    preds = [json.loads(line) for line in out.splitlines()]
    # every later good reading is still predicted; a relative time column starts at the wall clock (epoch s)
    t0 = preds[0]["time"]
    assert abs(t0 - time.time()) < 60
    assert [round(p["time"] - t0, 6) for p in preds] == [0.0, 0.1, 0.2, 0.6]
    assert "9 readings, 4 predictions, 5 skipped" in err
    assert "bad readings: bad_stream 1, bad_time 4, non_finite 1, non_number 1, unparsable 2" in err


def test_parse_time_never_raises():
    from edge_runtime.device.sources import parse_time

    assert parse_time(None) is None and parse_time("") is None
    assert parse_time(12.5) == 12.5 and parse_time("1970-01-01T00:00:10Z") == 10.0
    for bad in (10**400, "1" + "0" * 400 + "x", "9" * 10_000, "not a time", "inf", math.nan, [1], {"a": 1}):
        value = parse_time(bad)
        assert value is not None and not math.isfinite(value), bad


# --- 4. times -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_t", [1e20, math.inf, math.nan, -math.inf, 253402214400.0])
def test_one_bad_time_is_counted_and_does_not_silence_the_stream(bundle, bad_t):
    p = _p(bundle)
    assert p.step_one(GOOD, t=1.7e9, stream="s") is not None
    assert p.step_one(GOOD, t=bad_t, stream="s") is None
    made = [p.step_one(GOOD, t=1.7e9 + 0.1 * (i + 1), stream="s") for i in range(100)]
    assert sum(m is not None for m in made) == 100
    assert p.counters["bad"] == {"bad_time": 1}


def test_bad_time_as_a_first_reading_and_in_step_many(bundle):
    p = _p(bundle)
    assert p.step_one(GOOD, t=math.inf, stream="s") is None  # a stream's very first reading
    assert p.step_one(GOOD, t=5.0, stream="s") is not None
    batch = p.step_many([GOOD] * 3, ["s", "u", "v"], t=[1e20, math.nan, 6.0])
    assert [b is not None for b in batch] == [False, False, True]
    assert p.step_one(GOOD, t=5.1, stream="s") is not None
    assert p.counters["bad"] == {"bad_time": 3}


@pytest.mark.parametrize("bad_t", [1e20, math.nan, math.inf])
def test_one_bad_time_for_a_whole_step_many_call_skips_every_row(bundle, bad_t):
    p = _p(bundle)
    assert list(p.step_many([GOOD] * 2, ["s", "u"], t=5.0)) != [None, None]
    assert list(p.step_many([GOOD] * 2, ["s", "u"], t=bad_t)) == [None, None]  # one time for all (a scalar)
    assert p.counters["bad"] == {"bad_time": 2}
    assert None not in list(p.step_many([GOOD] * 2, ["s", "u"], t=5.1))


def test_a_wall_clock_stepped_back_restarts_the_stream_instead_of_dropping_until_it_catches_up(bundle, monkeypatch):
    import time as time_module

    clock = [1.7e9]
    monkeypatch.setattr(time_module, "time", lambda: clock[0])
    p = _p(bundle)
    made = []
    for i in range(40):
        clock[0] += 0.1
        if i == 20:
            clock[0] -= 30.0  # NTP steps the wall clock back 30 s
        made.append(p.step_one(GOOD, stream="s"))  # readings without a time of their own
    assert sum(m is not None for m in made) == 40
    assert "clock_step:-29.9s" in made[20].flags and "state_reset" in made[20].flags  # type: ignore[union-attr]
    assert p.counters["bad"] == {"clock_step": 1}


def test_a_late_reading_within_the_max_gap_is_still_skipped_as_backwards(bundle):
    p = _p(bundle)
    for t in (10.0, 10.1, 10.05, 10.2):
        p.step_one(GOOD, t=t, stream="s")
    assert p.counters["bad"] == {"backwards": 1} and p.counters["predictions"] == 3


# --- 5. values that would poison the state --------------------------------------------------------------------


@pytest.mark.parametrize("huge", [1e39, -1e39, 1e300, 10**400])
def test_a_value_beyond_float32_is_non_finite_and_never_reaches_the_state(bundle, huge):
    p = _p(bundle)
    p.step_one(GOOD, t=1.0, stream="s")
    pred = p.step_one({**GOOD, "ax": huge}, t=1.1, stream="s")
    assert pred is not None and "held:ax" in pred.flags
    assert np.isfinite(p.state("s")[0]).all()
    later = [p.step_one(GOOD, t=1.2 + 0.1 * i, stream="s") for i in range(5)]
    assert all(m is not None and all(math.isfinite(v) for v in m.values) for m in later)
    assert p.counters["bad"] == {"non_finite": 1}


def test_a_nan_state_after_a_step_is_reset_counted_and_never_checkpointed(bundle, tmp_path):
    p = _p(bundle, state_dir=tmp_path)
    real_step = p.backend.step
    poison = [False]

    def step(x, state):
        y, new = real_step(x, state)
        if poison[0]:
            poison[0] = False
            return y * np.nan, tuple(a * np.nan for a in new)
        return y, new

    p.backend.step = step  # type: ignore[method-assign]
    assert p.step_one(GOOD, t=1.0) is not None
    poison[0] = True
    assert p.step_one(GOOD, t=1.1) is None
    assert p.counters["bad"] == {"bad_state": 1} and p.counters["state_resets"] == 1
    assert p.step_one(GOOD, t=1.2) is not None
    p.save_state()
    with np.load(tmp_path / "state-dev1.npz") as z:
        assert np.isfinite(z["state.h"]).all()
    poison[0] = True
    batch = p.step_many([GOOD, GOOD], ["default", "other"], t=[1.3, 1.3])
    assert list(batch) == [None, None] and p.counters["bad"] == {"bad_state": 3}
    assert all(np.isfinite(p.state(s)[0]).all() for s in ("default", "other"))
    p.table.state[0][0, 1, 0] = np.inf  # a saturated cell whose outputs stay finite: caught at the checkpoint
    p.save_state()
    assert p.counters["bad"] == {"bad_state": 4} and not np.isinf(p.state("other")[0]).any()


def test_step_many_finds_a_nan_state_from_the_outputs_without_reducing_the_state_arrays(bundle):
    """The check runs on every call: a NaN state makes the outputs NaN, so they tell (an inf cell with finite
    outputs waits for the checkpoint, above); summing every state array cost a quarter of a batch-1 call."""
    p = _p(bundle)
    real_step = p.backend.step
    reductions: list[str] = []

    class Watched(np.ndarray):  # a state array that counts the reductions run over it
        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            if method == "reduce":
                reductions.append(ufunc.__name__)
            plain = tuple(np.asarray(a) if isinstance(a, Watched) else a for a in inputs)
            if "out" in kwargs:
                kwargs["out"] = tuple(np.asarray(a) if isinstance(a, Watched) else a for a in kwargs["out"])
            return getattr(ufunc, method)(*plain, **kwargs)

    def step(x, state):
        y, new = real_step(x, state)
        return y, tuple(a.view(Watched) for a in new)

    p.backend.step = step  # type: ignore[method-assign]
    for k in range(3):
        assert None not in list(p.step_many([GOOD, GOOD], ["a", "b"], t=1.0 + 0.1 * k))
    assert p.step_many([GOOD], ["a"], t=1.4)[0] is not None  # a gather of some streams, N = 1
    assert reductions == []


# --- 6. reset forgets the last time ---------------------------------------------------------------------------


def test_replaying_recordings_one_after_another_with_reset_predicts_every_reading(bundle):
    p = _p(bundle)
    made = 0
    for _recording in range(5):
        p.reset("rec")
        made += sum(p.step_one(GOOD, t=0.1 * i, stream="rec") is not None for i in range(30))  # time from 0
    assert made == 150 and p.counters["predictions"] == 150 and p.counters["skipped"] == 0
    p.reset()  # every stream
    assert p.step_one(GOOD, t=0.0, stream="rec") is not None


# --- 7. the gateway's batch path: t = 0.0 is a time -----------------------------------------------------------


def test_gateway_batches_starting_at_t_zero_predict_every_reading(bundle):
    from edge_runtime.device.loop import Runner
    from edge_runtime.publish.stdout import StdoutPublisher

    sensors = [f"s{i}" for i in range(200)]
    batches = [[Record(s, 0.1 * k, GOOD) for s in sensors] for k in range(10)]  # every stream starts at t = 0.0
    runner = Runner(SimpleNamespace(source="mqtt:x", rate="max", limit=None, quiet=True))
    runner.sink = StdoutPublisher("gw", None)  # what `run` opens without --mqtt (quiet: prints nothing)
    p = _p(bundle)
    runner._loop(p, batches, Stopper())
    assert p.counters["predictions"] == runner.predictions == 2000 and p.counters["bad"] == {}


# --- 10. bounded stream table ---------------------------------------------------------------------------------


def test_streams_beyond_max_streams_evict_the_longest_idle(bundle):
    p = _p(bundle, max_streams=100)
    for i in range(250):
        p.step_one(GOOD, t=1.0, stream=f"s{i}")
    p.step_many([GOOD] * 3, ["s249", "n1", "n2"], t=[2.0, 2.0, 2.0])
    c = p.counters
    assert c["streams"] == 100 and c["evicted"] == 152 and c["predictions"] == 253
    assert "s249" in p.streams and "n2" in p.streams and "s0" not in p.streams and "s151" not in p.streams
    assert p.step_one(GOOD, t=0.5, stream="s0") is not None  # an evicted stream comes back as a new one


def test_state_file_size_does_not_follow_the_longest_id(bundle, tmp_path):
    sizes = []
    for longest in (4, MAX_NAME):
        p = _p(bundle, state_dir=tmp_path / str(longest))
        ids = [f"s{i:03d}" for i in range(2000)] + ["L" * longest]
        p.step_many([GOOD] * len(ids), ids, t=1.0)
        sizes.append(p.save_state().stat().st_size)  # type: ignore[union-attr]
        q = _p(bundle, state_dir=tmp_path / str(longest))
        assert q.streams == ids
    assert sizes[1] - sizes[0] < 1000  # a "<U128" array of 2001 ids would add about 1 MB


# --- 13. the topic names the stream ---------------------------------------------------------------------------


def test_a_gateway_payload_cannot_name_another_stream_than_its_topic():
    src = object.__new__(MqttSource)
    src.features, src.stats = list(FEATURES), SourceStats()
    body = {"ax": 0, "ay": 1, "az": -2, "temp": 20}
    assert src._record("edgernn/s1/reading", json.dumps({**body, "stream": "s2"}).encode()) is None
    assert src._record("edgernn/s1/reading", json.dumps({**body, "device": "victim"}).encode()) is None
    same = src._record("edgernn/s1/reading", json.dumps({**body, "stream": "s1"}).encode())
    plain = src._record("edgernn/s1/reading", json.dumps(body).encode())
    spaced = src._record("edgernn/ lead/reading", json.dumps(body).encode())
    assert same is not None and plain is not None and spaced is not None
    assert same.stream == plain.stream == "s1" and spaced.stream == " lead"  # the predictor: bad_stream
    assert src._record("edgernn/s1/reading", b"[" * 5000) is None
    assert src._record("edgernn/s1/reading", b"{" + b" " * MAX_LINE + b"}") is None
    assert src.stats.stream_mismatch == 2 and src.stats.unparsable == 2


def test_csv_source_reads_invalid_utf8_header_and_keeps_going(tmp_path):
    path = tmp_path / "h.csv"
    path.write_bytes(b"t,ax,ay,az,temp,\xff\n1,0,1,-2,20,x\n")
    src = CsvSource(path, FEATURES)
    records = [r for batch in src for r in batch]
    assert len(records) == 1 and records[0].reading == {"ax": 0.0, "ay": 1.0, "az": -2.0, "temp": 20.0}


def test_step_block_counts_bad_times_and_names_like_step_many(bundle):
    p = _p(bundle)
    x = np.tile(np.asarray(OFFSET), (3, 2, 1))  # (K=3 ticks, N=2 streams, C)
    times = np.array([[1.0, 1.0], [np.nan, 1.1], [1.2, 1.2]])
    batch = p.step_block(x, ["s1", "s2"], times)
    assert [b is not None for b in batch] == [True, True, False, True, True, True]
    assert p.counters["bad"] == {"bad_time": 1}
    batch = p.step_block(x, ["s1", "a/b"], np.array([2.0, 2.1, 2.2]))
    assert [b is not None for b in batch] == [True, False] * 3
    assert p.counters["bad"] == {"bad_time": 1, "bad_stream": 3} and p.streams == ["s1", "s2"]


def test_serial_lines_pass_the_line_bound_to_the_port():
    from edge_runtime.device.sources import SerialLines

    class Port:
        def __init__(self) -> None:
            self.data, self.sizes = io.BytesIO(b"x" * 100 + b"\n"), list[int]()

        def readline(self, size: int = -1) -> bytes:
            self.sizes.append(size)
            return self.data.readline(size)

    port = Port()
    assert SerialLines(port).readline(10) == b"x" * 10 and port.sizes == [10]


def test_run_refuses_a_bad_stream_flag_and_reports_evictions(bundle, tmp_path, capsys):
    csv = tmp_path / "five.csv"
    csv.write_text("t,stream,ax,ay,az,temp\n" + "".join(f"1.0,s{i},0,1,-2,20\n" for i in range(5)))
    assert main(["run", str(bundle), "--source", f"csv:{csv}", "--stream", "a/b"]) == 2
    assert "invalid stream 'a/b': must not contain / + # or NUL" in capsys.readouterr().err
    assert main(["run", str(bundle), "--source", f"csv:{csv}", "--backend", "numpy", "--max-streams", "2"]) == 0
    err = capsys.readouterr().err
    assert "5 readings, 5 predictions" in err and "streams evicted 3 (--max-streams)" in err
