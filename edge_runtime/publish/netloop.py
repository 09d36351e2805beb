"""One network thread for every paho client in the process, on epoll (`selectors`), plus one scheduler
thread that runs every publisher's outbox step when it is due.

Why not paho's `loop_start()`: it is a thread per client whose `select()` cannot watch a file descriptor
above 1024. A simulated fleet of 1,000 devices in one process (each with its socket and its outbox files)
passes that after about 200 clients, and the rest silently never connect (measured). paho supports an
external event loop (`on_socket_*` callbacks, `loop_read/loop_write/loop_misc`); this is it. A device with
one publisher gets the same two threads.

`driven_here()` runs both on the calling thread instead, for a process that hosts hundreds of publishers (a
simulated fleet): with three threads, every socket call hands the interpreter lock to another thread and waits
to get it back. paho alone measured 188 us of CPU per QoS 1 message with the threads and 117 us on one thread
(500 clients, one process, a local Mosquitto).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, Self

log = logging.getLogger("edge_runtime.publish")

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class _PerProcess:
    """One instance per process, made again if its thread has died; `shared()` gives it."""

    _thread: threading.Thread
    _instances: ClassVar[dict[type, Any]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls) -> Self:
        with _PerProcess._instances_lock:
            inst = _PerProcess._instances.get(cls)
            if inst is None or not inst._thread.is_alive():
                inst = _PerProcess._instances[cls] = cls()
            return inst


def _own_thread(target: Callable[[], None], name: str, driver: threading.Thread | None) -> threading.Thread:
    """The loop's own daemon thread, started; or `driver`, the thread that will call its one-round method."""
    if driver is not None:
        return driver
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class NetLoop(_PerProcess):
    """Drives the sockets of attached paho clients; `call_later` runs small callbacks on this thread."""

    def __init__(self, driver: threading.Thread | None = None) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, READ, None)
        self._ops: deque[Callable[[], None]] = deque()  # applied on the loop thread, in order
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._count = itertools.count()
        self._clients: set[Any] = set()
        self._to_write: deque[tuple[Any, Any]] = deque()  # (client, socket) with packets queued
        self._writing: set[Any] = set()  # sockets registered for WRITE: they were full
        self._next_misc = time.monotonic() + 1.0
        self._thread = _own_thread(self._run, "edgernn-mqtt-net", driver)

    # -- wiring a client ------------------------------------------------------------------------------------
    def attach(self, client: Any) -> None:
        client.on_socket_open = lambda c, u, sock: self._call(lambda: self._register(c, sock, READ))
        client.on_socket_close = lambda c, u, sock: self._call(lambda: self._unregister(sock))
        client.on_socket_register_write = lambda c, u, sock: self._call(lambda: self._to_write.append((c, sock)))
        client.on_socket_unregister_write = lambda c, u, sock: self._call(lambda: self._unwrite(c, sock))
        self._call(lambda: self._clients.add(client))

    def detach(self, client: Any) -> None:
        self._call(lambda: self._clients.discard(client))

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        when = time.monotonic() + delay
        self._call(lambda: heapq.heappush(self._timers, (when, next(self._count), fn)))

    def _call(self, op: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            op()  # in order with what the loop is doing now (a socket closed and reopened keeps its fd)
            return
        self._ops.append(op)
        with contextlib.suppress(BlockingIOError, OSError):  # full: the loop is awake already; closed: it ended
            self._wake_w.send(b"\0")

    def close(self) -> None:
        """Release the selector and the wake-up sockets (a driven loop, once its block ends)."""
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- selector bookkeeping (loop thread only) --------------------------------------------------------------
    def _register(self, client: Any, sock: Any, events: int) -> None:
        self._unregister(sock)
        self._sel.register(sock, events, client)

    def _unregister(self, sock: Any) -> None:
        self._writing.discard(sock)
        with contextlib.suppress(KeyError, ValueError):  # not registered (any more)
            self._sel.unregister(sock)

    def _modify(self, client: Any, sock: Any, events: int) -> None:
        with contextlib.suppress(KeyError, ValueError):  # closed meanwhile
            self._sel.modify(sock, events, client)

    def _write_queued(self) -> None:
        """Write what clients queued, before asking epoll: a socket to the broker is nearly always writable, and
        registering it for WRITE costs two epoll_ctl calls and a select event for every message."""
        while self._to_write:
            client, sock = self._to_write.popleft()
            if client.socket() is not sock:
                continue  # closed meanwhile
            self._guard(client.loop_write)
            if client.socket() is sock and client.want_write() and sock not in self._writing:
                self._writing.add(sock)  # full: write the rest when epoll says it is writable
                self._modify(client, sock, READ | WRITE)

    def _unwrite(self, client: Any, sock: Any) -> None:
        if sock in self._writing:
            self._writing.discard(sock)
            self._modify(client, sock, READ)

    # -- the loop -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self.poll(1.0)

    def poll(self, timeout: float) -> None:
        """One round on the loop thread: wait up to `timeout` s for sockets (less when a timer or the keepalive
        check is due), serve them, then run queued operations and due timers."""
        self._write_queued()
        now = time.monotonic()
        timeout = min(timeout, self._next_misc - now)
        if self._to_write:
            timeout = 0.0  # queued by a callback just now
        if self._timers:
            timeout = min(timeout, self._timers[0][0] - now)
        try:
            events = self._sel.select(max(0.0, timeout))
        except OSError as exc:  # a socket closed under us; the next round has a clean map
            log.debug("select: %s", exc)
            events = []
        for key, mask in events:
            if key.data is None:
                self._drain_wake()
                continue
            self._serve(key.data, key.fileobj, mask)
        while self._ops:
            self._guard(self._ops.popleft())
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            self._guard(heapq.heappop(self._timers)[2])
        if now >= self._next_misc:
            self._next_misc = now + 1.0
            for client in list(self._clients):
                self._guard(client.loop_misc)  # keepalive pings, dead connections

    def _serve(self, client: Any, sock: Any, mask: int) -> None:
        if mask & READ:
            self._guard(client.loop_read)
            # Bytes already received do not make the socket readable again: a BufferedClient's buffer, or TLS
            # records decrypted into the SSL buffer. Read on while there are any.
            left = _unread(client, sock)
            while left and client.socket() is sock:
                self._guard(client.loop_read)
                left, before = _unread(client, sock), left
                if left >= before:
                    break  # no progress (a failing callback?): never spin here
        if mask & WRITE and client.socket() is sock:
            self._guard(client.loop_write)

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    @staticmethod
    def _guard(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # one client's bug must not stop every other client's network
            log.exception("MQTT network loop: %s failed", getattr(fn, "__qualname__", fn))


def _unread(client: Any, sock: Any) -> int:
    unread = getattr(client, "unread", None)
    pending = getattr(sock, "pending", None)
    return (unread() if unread is not None else 0) + (pending() if pending is not None else 0)


class Job(Protocol):
    step_lock: threading.Lock

    def step(self) -> None: ...

    def next_timeout(self) -> float: ...

    def failed(self, exc: BaseException) -> None: ...


class Scheduler(_PerProcess):
    """Runs `job.step()` when the job is due (`next_timeout`) or poked; one thread for every publisher."""

    def __init__(self, driver: threading.Thread | None = None) -> None:
        self._cond = threading.Condition()
        self._due: dict[Job, float] = {}
        self._heap: list[tuple[float, int, Job]] = []
        self._ready: dict[Job, None] = {}  # an ordered set
        self._count = itertools.count()
        self._thread = _own_thread(self._run, "edgernn-mqtt-outbox", driver)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def add(self, job: Job) -> None:
        with self._cond:
            self._due[job] = 0.0
            self._ready[job] = None
            self._cond.notify()

    def remove(self, job: Job) -> None:
        """No step of `job` runs after this returns."""
        with self._cond:
            self._due.pop(job, None)
            self._ready.pop(job, None)
        with job.step_lock:  # a step in progress finishes first
            pass

    def poke(self, job: Job) -> None:
        with self._cond:
            if job in self._due and job not in self._ready:
                self._ready[job] = None
                self._cond.notify()

    def _run(self) -> None:
        while True:
            wait = self.run_due()
            with self._cond:
                if not self._ready and (wait is None or wait > 0):  # a poke since run_due: no sleep
                    self._cond.wait(wait)

    def run_due(self, until: float = math.inf) -> float | None:
        """Run the jobs that are due or poked, here, at least one and then until `until` (time.monotonic());
        the rest stay ready for the next call. Returns seconds until the next job is due (None: no job)."""
        with self._cond:
            batch = self._take_due()
        for i, job in enumerate(batch):
            if i and time.monotonic() >= until:
                with self._cond:  # out of time: the caller has other work (a simulation tick) due
                    rest = dict.fromkeys(j for j in batch[i:] if j in self._due)
                    self._ready = rest | self._ready
                break
            self._run_one(job)
        with self._cond:
            if self._ready:
                return 0.0
            return max(0.0, self._heap[0][0] - time.monotonic()) if self._heap else None

    def _take_due(self) -> list[Job]:
        now = time.monotonic()
        batch = list(self._ready)
        self._ready.clear()
        while self._heap and self._heap[0][0] <= now:
            when, _, job = heapq.heappop(self._heap)
            if self._due.get(job) == when and job not in batch:  # else a stale entry
                batch.append(job)
        return batch

    def _run_one(self, job: Job) -> None:
        with job.step_lock:
            if job not in self._due:
                return  # removed meanwhile
            try:
                job.step()
                timeout = job.next_timeout()
            except Exception as exc:  # a bug or a broken disk: the publisher reports it, the others go on
                log.exception("MQTT outbox step failed")
                job.failed(exc)
                timeout = 60.0
        with self._cond:
            if job in self._due:
                when = time.monotonic() + timeout
                self._due[job] = when
                heapq.heappush(self._heap, (when, next(self._count), job))


class Driver:
    """This process's network loop and outbox scheduler, run by the thread that made it (`driven_here`)."""

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.net = NetLoop(self.thread)
        self.sched = Scheduler(self.thread)

    def pump(self, timeout: float = 0.0) -> None:
        """Serve every socket and outbox for `timeout` seconds (at least one round), then return."""
        deadline = time.monotonic() + timeout
        while True:
            due = self.sched.run_due(until=deadline)
            left = deadline - time.monotonic()
            self.net.poll(max(0.0, left if due is None else min(left, due)))
            if time.monotonic() >= deadline:
                self.sched.run_due(until=deadline)  # what the last round received, as time allows
                return


_driver: Driver | None = None


@contextlib.contextmanager
def driven_here() -> Iterator[Driver]:
    """Publishers made inside the block run on this thread: it must call `pump` instead of sleeping.

    Publishers made before keep their threads. Every publisher made inside must be closed inside.
    """
    global _driver
    with _PerProcess._instances_lock:
        if _driver is not None:
            raise RuntimeError("driven_here() is already active in this process")
        saved = dict(_PerProcess._instances)
        _driver = driver = Driver()
        _PerProcess._instances[NetLoop], _PerProcess._instances[Scheduler] = driver.net, driver.sched
    try:
        yield driver
    finally:
        with _PerProcess._instances_lock:
            _driver = None
            _PerProcess._instances.clear()
            _PerProcess._instances.update(saved)
        driver.net.close()


def wait_for(
    done: Callable[[], bool], timeout: float, interval: float = 0.002, event: threading.Event | None = None
) -> bool:
    """Wait until `done()` (True) or `timeout` s pass (False); pumps when this thread drives the loops.

    `event`: set when `done()` turns True; off the driving thread it is waited on instead of polling."""
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        driver = _driver
        if driver is not None and driver.thread is threading.current_thread():
            driver.pump(min(left, interval))
        elif event is not None:
            event.wait(left)
        else:
            time.sleep(min(left, interval))
    return True
