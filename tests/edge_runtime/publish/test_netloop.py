"""The network loop and outbox scheduler driven from the caller's thread, and the paho client the publisher
gets. Delivery through them against a real broker is in test_delivery.py."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest

from edge_runtime.publish.buffered_client import FAST_PATHS, BufferedClient
from edge_runtime.publish.config import BrokerConfig, parse_broker_url
from edge_runtime.publish.netloop import Scheduler, driven_here, wait_for
from edge_runtime.publish.paho_client import new_client


class SlowJob:
    def __init__(self, name: str, ran: list[str], seconds: float) -> None:
        self.name, self.ran, self.seconds = name, ran, seconds
        self.step_lock = threading.Lock()

    def step(self) -> None:
        self.ran.append(self.name)
        time.sleep(self.seconds)

    def next_timeout(self) -> float:
        return 60.0

    def failed(self, exc: BaseException) -> None:
        raise AssertionError(exc)


def test_run_due_stops_at_its_deadline_and_keeps_the_rest_ready():
    """A simulated clock drives the outboxes between ticks: a round must not run past the next tick."""
    ran: list[str] = []
    sched = Scheduler(threading.current_thread())
    jobs = [SlowJob(n, ran, 0.02) for n in "abcd"]
    for job in jobs:
        sched.add(job)
    assert sched.run_due(until=time.monotonic() + 0.03) == 0.0  # two ran (0.02 s each); two are still ready
    assert ran == ["a", "b"]
    assert sched.run_due(until=time.monotonic()) == 0.0  # out of time already: still one, so it progresses
    assert ran == ["a", "b", "c"]
    left = sched.run_due()
    assert ran == ["a", "b", "c", "d"] and left is not None and 59 < left <= 60  # next: in next_timeout()


def test_driven_here_is_one_per_process_and_restores_the_threaded_loops():
    with driven_here() as driver:
        assert driver.thread is threading.current_thread()
        with pytest.raises(RuntimeError, match="already active"), driven_here():
            pass
        t0 = time.monotonic()
        assert wait_for(lambda: False, 0.05) is False  # pumps the driver meanwhile, returns on time
        assert 0.04 <= time.monotonic() - t0 < 1.0
    with driven_here() as again:  # the block ended cleanly: a new one may start
        again.pump(0.0)


def test_the_publisher_gets_the_buffered_client_with_the_paho_it_was_written_for():
    """BufferedClient overrides two private paho methods; a paho upgrade must be looked at, not slip through."""
    import paho.mqtt

    assert FAST_PATHS, f"paho-mqtt {paho.mqtt.__version__} is not the release BufferedClient was written for"
    address = parse_broker_url("mqtt://127.0.0.1:1883")[0]
    assert type(new_client(address, BrokerConfig(), "pub", buffered=True)) is BufferedClient
    # `edgernn listen` runs paho's own loop, which does not know to drain the buffer: plain paho there
    assert type(new_client(address, BrokerConfig(), "listen")) is mqtt.Client


def test_wait_for_an_event_off_the_driving_thread_returns_when_it_is_set():
    """A device's publisher waits for its CONNACK on an Event: no polling, no added delay."""
    ev = threading.Event()
    threading.Timer(0.05, ev.set).start()
    t0 = time.monotonic()
    assert wait_for(ev.is_set, 5.0, interval=10.0, event=ev)  # a 10 s poll would miss it by seconds
    assert time.monotonic() - t0 < 1.0
    assert not wait_for(threading.Event().is_set, 0.05, event=threading.Event())
