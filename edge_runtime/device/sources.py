"""Where `edgernn run` gets readings: CSV replay, stdin JSON lines, a serial port, an MQTT subscription.

Each source yields batches of `Record(stream, t, reading)`: one record at a time for a single sensor, or
whatever arrived together on a gateway's subscription (stepped with `step_many`). A line that cannot be
parsed is counted (`unparsable`) and skipped; it never stops the loop: invalid UTF-8, JSON nested too
deep, a CSV quote left open, a line longer than `MAX_LINE` (skipped without being held in memory whole).
A time that is there but unreadable becomes NaN, which the predictor counts as `bad_time`; no time at all
is None (this device's clock when the reading arrived: `Record.received`). In a gateway the topic names
the stream: a payload naming another one is refused (`stream_mismatch`), so a sensor cannot write into
another's state around the broker's ACL.
Blocking reads are interruptible: `Stopper` lets SIGTERM / SIGINT break out of them and end the run cleanly.

Spec strings: `csv:PATH`, `stdin` (or `-`), `serial:/dev/ttyUSB0[@115200]`, `mqtt:mqtt://host:1883`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edgernn.errors import ConfigError

TIME_KEYS = ("t", "time", "timestamp", "ts")
# A CSV time column below this (2001-09-09 in epoch seconds) counts from the recording's start: the replay
# shifts it to start at the wall clock, so predictions carry epoch seconds as the schema says.
RELATIVE_BEFORE = 1e9
STREAM_KEYS = ("stream", "device", "sensor", "id")
SOURCE_KINDS = "csv:PATH, stdin, serial:PORT[@BAUD], mqtt:URL"
MAX_LINE = 64 * 1024  # characters (bytes for serial and MQTT) of one line or message; longer is unparsable


@dataclass
class Record:
    stream: str
    t: float | None  # the reading's own time; None: it has none
    reading: Any  # dict of feature -> value, or a list of values in feature order
    # this device's clock when the reading arrived: the time of one without its own (never when it is stepped:
    # a loop busy with a checkpoint or a backlog must not turn its own delay into the sensor's gap)
    received: float = field(default_factory=lambda: time.time())


class Stop(Exception):
    """Raised out of a blocking read when a stop was requested."""


@dataclass
class Stopper:
    """Set by the signal handler; raises `Stop` only while the loop is parked in a blocking read."""

    requested: bool = False
    signal: int = 0
    waiting: bool = False

    def request(self, signum: int, _frame: Any = None) -> None:
        self.requested, self.signal = True, signum
        if self.waiting:
            raise Stop

    def wait(self) -> _Waiting:
        return _Waiting(self)


class _Waiting:
    def __init__(self, stopper: Stopper) -> None:
        self.stopper = stopper

    def __enter__(self) -> None:
        if self.stopper.requested:
            raise Stop
        self.stopper.waiting = True

    def __exit__(self, *exc: object) -> None:
        self.stopper.waiting = False


@dataclass
class SourceStats:
    records: int = 0
    unparsable: int = 0
    stream_mismatch: int = 0  # gateway: a payload naming a stream other than its topic's
    errors: list[str] = field(default_factory=list)


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from a number, a numeric string or an ISO 8601 timestamp; None when there is
    no time (absent, empty), NaN when there is one that is not a usable time (the predictor: `bad_time`)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)  # inf and NaN stay what they are: bad times
        except OverflowError:  # an integer of hundreds of digits
            return math.nan
    if not isinstance(value, str) or len(value) > 64:
        return math.nan
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime  # only for timestamps written as text: keep start-up light

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return math.nan


def split_message(obj: Any, default_stream: str, features: Sequence[str]) -> Record | None:
    """One JSON message -> Record. Accepts `{"t":..,"stream":..,"reading":{..}}`, a flat object of features
    (with optional time and stream keys), or a list of values in feature order."""
    if isinstance(obj, list):
        return Record(default_stream, None, obj)
    if not isinstance(obj, dict):
        return None
    t = next((parse_time(obj[k]) for k in TIME_KEYS if k in obj), None)
    stream = next((_name(obj[k]) for k in STREAM_KEYS if k in obj and k not in features), default_stream)
    if "reading" in obj:
        return Record(stream, t, obj["reading"])
    skip = {*TIME_KEYS, *STREAM_KEYS} - set(features)
    return Record(stream, t, {k: v for k, v in obj.items() if k not in skip})


def _name(value: Any) -> str:
    """A stream key's value as a name; a long one is cut (it is refused as `bad_stream` either way)."""
    return value if isinstance(value, str) else str(value)[:1000]


def _json_line(line: str, stream: str, features: Sequence[str], stats: SourceStats) -> Record | None:
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except RecursionError:  # brackets nested a thousand deep
        stats.unparsable += 1
        return None
    except ValueError:
        # a bare comma-separated line of numbers, as simple serial sensors print them
        parts = line.split(",")
        if len(parts) == len(features):
            return Record(stream, None, [p.strip() for p in parts])
        stats.unparsable += 1
        return None
    rec = split_message(obj, stream, features)
    if rec is None:
        stats.unparsable += 1
    return rec


class CsvSource:
    """Replay a CSV file: as fast as possible, or at the pace of its time column (`speed` x real time)."""

    def __init__(
        self,
        path: str | Path,
        features: Sequence[str],
        *,
        time_column: str | None = None,
        stream_column: str | None = None,
        stream: str = "default",
        rate: str = "max",
        speed: float = 1.0,
        stopper: Stopper | None = None,
        missing_column: str = "refuse",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"CSV source {str(path)!r} does not exist or is not a file")
        self._check_header(list(features), missing_column)
        self.features, self.stream, self.rate, self.speed = list(features), stream, rate, speed
        self.time_column, self.stream_column = time_column, stream_column
        self.stopper = stopper or Stopper()
        self.stats = SourceStats()
        if rate not in ("max", "recorded"):
            raise ConfigError(f"rate {rate!r}; allowed: max (as fast as possible), recorded (the file's own pace)")
        if speed <= 0:
            raise ConfigError(f"speed must be > 0, got {speed}")

    def __iter__(self) -> Iterator[list[Record]]:
        # invalid UTF-8 becomes U+FFFD; each line is parsed on its own, so a quote left open spoils one row
        with self.path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = _csv_rows(_bounded_lines(f.readline, self.stats), self.stats)
            header = next(reader, None)
            if header is None:
                return
            cols = {name.strip(): i for i, name in enumerate(header)}
            tcol = self._column(cols, self.time_column, TIME_KEYS, "time")
            scol = self._column(cols, self.stream_column, STREAM_KEYS, "stream")
            feat = [(name, cols[name]) for name in self.features if name in cols]
            if not feat:
                raise ConfigError(f"{self.path} has none of the model's features {self.features}; columns: {header}")
            pace = self.rate == "recorded" and tcol is not None
            start_wall = start_t = None
            offset: float | None = None  # added to a relative time column (decided at the first time)
            for row in reader:
                if not row:
                    continue
                t = parse_time(row[tcol]) if tcol is not None and tcol < len(row) else None
                if t is not None:
                    if offset is None:  # a time before 2001 is relative (0.0, 0.04, ...): from the wall clock
                        offset = time.time() - t if t < RELATIVE_BEFORE else 0.0  # now, so a restart never goes back
                    t += offset
                reading = {name: _cell(row[i]) for name, i in feat if i < len(row) and row[i].strip() != ""}
                stream = row[scol] if scol is not None and scol < len(row) else self.stream
                if pace and t is not None:
                    if start_t is None:
                        start_wall, start_t = time.monotonic(), t
                    assert start_wall is not None
                    delay = start_wall + (t - start_t) / self.speed - time.monotonic()
                    if delay > 0:
                        with self.stopper.wait():
                            time.sleep(delay)
                self.stats.records += 1
                yield [Record(stream, t, reading)]

    def _check_header(self, features: list[str], policy: str) -> None:
        """Refuse, before any reading, a file lacking feature columns: every row would run on imputed values."""
        # read as the rows are read: invalid UTF-8 replaced, one bounded line, a bad quote not fatal
        with self.path.open(newline="", encoding="utf-8", errors="replace") as f:
            first = f.readline(MAX_LINE + 1)
        try:
            header = next(csv.reader([first]), None) or []
        except csv.Error:
            header = []
        absent = [name for name in features if name not in {h.strip() for h in header}]
        if absent and policy != "allow":
            raise ConfigError(
                f"{self.path} lacks the model's feature column(s) {', '.join(absent)} (columns: {', '.join(header)}); "
                "--policy missing_column=allow replays it with the `missing` policy filling them"
            )

    def _column(self, cols: dict[str, int], given: str | None, guesses: Sequence[str], what: str) -> int | None:
        if given:
            if given not in cols:
                raise ConfigError(f"{what} column {given!r} is not in {self.path}; columns: {list(cols)}")
            return cols[given]
        return next((cols[g] for g in guesses if g in cols and g not in self.features), None)


def _bounded_lines(readline: Any, stats: SourceStats) -> Iterator[Any]:
    """Lines from `readline(limit)` until the end; one longer than MAX_LINE is counted unparsable and its
    rest read and dropped piece by piece, never held whole."""
    while True:
        line = readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_LINE or line[-1:] in ("\n", b"\n"):
            yield line
            continue
        stats.unparsable += 1
        while line and line[-1:] not in ("\n", b"\n"):
            line = readline(MAX_LINE)


def _csv_rows(lines: Iterator[str], stats: SourceStats) -> Iterator[list[str]]:
    """CSV rows, one line each: a malformed line (an open quote, text after a closing quote) is unparsable."""
    for line in lines:
        try:
            yield next(csv.reader([line], strict=True))
        except csv.Error:
            stats.unparsable += 1


def _cell(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text  # the predictor counts it as not a number


class LineSource:
    """JSON lines (or comma-separated numbers) from a text stream: stdin, or a serial port's lines."""

    def __init__(self, lines: IO[str] | Any, features: Sequence[str], *, stream: str, stopper: Stopper) -> None:
        self.lines, self.features, self.stream, self.stopper = lines, list(features), stream, stopper
        self.stats = SourceStats()

    def _readline(self, limit: int) -> Any:
        try:
            return self.lines.readline(limit)
        except UnicodeDecodeError:  # a text stream opened strictly: this line is lost, the next is read
            self.stats.unparsable += 1
            return "\n"

    def __iter__(self) -> Iterator[list[Record]]:
        lines = _bounded_lines(self._readline, self.stats)
        while True:
            with self.stopper.wait():
                line = next(lines, None)
            if line is None:
                return
            if isinstance(line, bytes):
                line = line.decode("utf-8", errors="replace")
            rec = _json_line(line, self.stream, self.features, self.stats)
            if rec is not None:
                self.stats.records += 1
                yield [rec]


def open_serial(port: str, baud: int) -> Any:
    try:
        import serial  # pyserial, optional: pip install 'edgernn[serial]'
    except ImportError as exc:
        raise ConfigError("a serial source needs pyserial: pip install 'edgernn[serial]'") from exc
    try:
        return serial.Serial(port, baud, timeout=1.0)
    except (serial.SerialException, OSError) as exc:
        raise ConfigError(f"cannot open serial port {port} at {baud} baud: {exc}") from exc


class SerialLines:
    """A serial port as a line reader that returns "" only at the end (its reads time out every second).

    A port that vanishes (a USB adapter unplugged, the writer gone) is reopened with back-off, 0.5 s doubling
    to 30 s, for as long as the service runs: a device loop keeps its streams' state through the outage, and
    counts it (`outages`, `down_s`). `reopen` is None for a port given as an object: the error then ends the run.
    """

    BACKOFF_S = (0.5, 30.0)  # first and longest wait between tries

    def __init__(self, port: Any, reopen: Any = None) -> None:
        self.port, self.reopen = port, reopen
        self.outages = 0
        self.down_s = 0.0

    def readline(self, limit: int = -1) -> bytes:
        while True:
            try:
                raw = self.port.readline(limit)
            except (OSError, _serial_error()) as exc:
                if self.reopen is None:
                    raise
                self._recover(exc)
                continue
            if raw:
                return bytes(raw)  # LineSource decodes it, invalid UTF-8 as U+FFFD

    def _recover(self, exc: BaseException) -> None:
        self.outages += 1
        lost = time.monotonic()
        print(f"edgernn run: serial port lost ({exc}); reopening it, state kept", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            self.port.close()
        delay = self.BACKOFF_S[0]
        while True:
            time.sleep(delay)  # a signal ends the run here: the caller reads inside Stopper.wait()
            try:
                self.port = self.reopen()
                break
            except (OSError, ConfigError, _serial_error()):
                delay = min(delay * 2, self.BACKOFF_S[1])
        self.down_s += time.monotonic() - lost
        print(f"edgernn run: serial port back after {time.monotonic() - lost:.1f} s", file=sys.stderr, flush=True)


def _serial_error() -> type[BaseException]:
    import serial  # only ever called with pyserial loaded: a SerialLines exists

    return serial.SerialException


class MqttSource:
    """A gateway: subscribe to `<prefix>/+/reading`; the topic's middle level names the stream.

    Messages that arrive together are yielded as one batch (at most `max_batch`), so the loop steps them
    with one `step_many` call.
    """

    def __init__(
        self,
        url: str,
        features: Sequence[str],
        *,
        prefix: str,
        stopper: Stopper,
        config: Any = None,
        client_id: str | None = None,
        max_batch: int = 4096,
    ) -> None:
        import os
        import queue

        self.features, self.prefix, self.stopper, self.max_batch = list(features), prefix, stopper, max_batch
        self.stats = SourceStats()
        self._empty = queue.Empty
        self._full = queue.Full
        self.queue: queue.Queue[tuple[str, bytes, float]] = queue.Queue(maxsize=100_000)
        self.dropped = 0
        try:
            from edge_runtime.publish.paho_client import subscribe_client
        except ImportError as exc:
            raise ConfigError("an MQTT source needs paho-mqtt: pip install 'edgernn[device]'") from exc
        from edge_runtime.publish.config import BrokerConfig, parse_broker_url

        address, user, password = parse_broker_url(url)
        cfg = (config if config is not None else BrokerConfig.load()[0]).with_url_credentials(user, password)
        self.topic = f"{prefix}/+/reading"
        # The publisher's client factory: same TLS (client certificates too), credentials, protocol and errors.
        # Its own client id, never the publisher's (the broker would drop one of two clients with one id).
        # Readings are not retained: subscribed before the loop starts, so none published after start is missed.
        cid = client_id or f"edgernn-gateway-{os.getpid()}-{time.time_ns() % 10**6}"
        self.client = subscribe_client(address, cfg, cid, [self.topic], self._on_message)

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        try:
            self.queue.put_nowait((msg.topic, msg.payload, time.time()))  # arrival: the time of a reading without one
        except self._full:
            self.dropped += 1

    def _record(self, topic: str, payload: bytes, arrived: float | None = None) -> Record | None:
        parts = topic.split("/")
        stream = parts[-2] if len(parts) >= 2 else "default"
        if len(payload) > MAX_LINE:
            self.stats.unparsable += 1
            return None
        rec = _json_line(payload.decode("utf-8", errors="replace"), stream, self.features, self.stats)
        if rec is not None and rec.stream != stream:  # the topic names the stream, whatever the payload says
            self.stats.stream_mismatch += 1
            return None
        if rec is not None and arrived is not None:
            rec.received = arrived
        return rec

    def __iter__(self) -> Iterator[list[Record]]:
        try:
            while True:
                with self.stopper.wait():
                    try:
                        first = self.queue.get(timeout=1.0)
                    except self._empty:
                        continue
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self.queue.get_nowait())
                    except self._empty:
                        break
                records = [r for item in batch if (r := self._record(*item)) is not None]
                self.stats.records += len(records)
                if records:
                    yield records
        finally:
            self.client.loop_stop()
            self.client.disconnect()


def open_source(
    spec: str,
    features: Sequence[str],
    *,
    stopper: Stopper,
    stream: str = "default",
    time_column: str | None = None,
    stream_column: str | None = None,
    rate: str = "max",
    speed: float = 1.0,
    baud: int = 115200,
    prefix: str = "edgernn",
    mqtt_config: Any = None,
    missing_column: str = "refuse",
) -> Any:
    """A source from its spec string (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if spec in ("stdin", "-"):  # bytes when there are: invalid UTF-8 becomes U+FFFD instead of an error
        return LineSource(getattr(sys.stdin, "buffer", sys.stdin), features, stream=stream, stopper=stopper)
    if kind == "csv" and rest:
        return CsvSource(
            rest,
            features,
            time_column=time_column,
            stream_column=stream_column,
            stream=stream,
            rate=rate,
            speed=speed,
            stopper=stopper,
            missing_column=missing_column,
        )
    if kind == "serial" and rest:
        port, _, baud_text = rest.partition("@")
        if baud_text:
            try:
                baud = int(baud_text)
            except ValueError as exc:
                raise ConfigError(f"serial baud rate {baud_text!r} is not a number, e.g. serial:{port}@115200") from exc
        lines = SerialLines(open_serial(port, baud), reopen=lambda: open_serial(port, baud))
        return LineSource(lines, features, stream=stream, stopper=stopper)
    if kind == "mqtt" and rest:
        return MqttSource(rest, features, prefix=prefix, stopper=stopper, config=mqtt_config)
    raise ConfigError(f"unknown source {spec!r}; allowed: {SOURCE_KINDS}")
