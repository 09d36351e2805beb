"""A fleet's power: which devices are on, the reboot faults' power cuts and boots, what each boot restored.

A power cut stops the device and loses its RAM state; its publisher goes without waiting (the outbox keeps
what is unacknowledged). At boot the runtime restores the stream from the fleet's checkpoint, and the first
reading after it tells whether the runtime keeps the restored state or resets it for the gap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_runtime.stream.predictor import Predictor
from firmware_sim.delivery import FleetDelivery
from firmware_sim.injector import DeviceFault


class FleetPower:
    def __init__(self, ids: list[str]) -> None:
        n = len(ids)
        self.ids = ids
        self.on = np.ones(n, bool)
        self.reboots = np.zeros(n, np.int64)
        self.restores: dict[str, int] = {}  # at boot: restored | no_checkpoint | unreadable
        self.after_boot: dict[str, int] = {}  # first reading after boot: kept | reset_by_gap | fresh
        self.fresh = np.zeros(n, bool)  # restored, and its first reading since not yet stepped

    def events(self, t: float, reboots: list[DeviceFault], predictor: Predictor, out: FleetDelivery) -> None:
        """Power cuts that start and boots that end by simulated time t."""
        for f in reboots:
            if not f.started and t >= f.spec.at:
                f.started = True
                for d in f.devices.tolist():
                    self.power_off(d, out)
            if f.started and not f.ended and t >= f.spec.end:
                f.ended = True
                for d in f.devices.tolist():
                    self.boot(d, predictor, out)

    def power_off(self, d: int, out: FleetDelivery) -> None:
        self.on[d] = False
        self.reboots[d] += 1
        out.power_off(d)

    def boot(self, d: int, predictor: Predictor, out: FleetDelivery) -> None:
        outcome = predictor.restore_stream(self.ids[d])
        self.restores[outcome] = self.restores.get(outcome, 0) + 1
        out.boot(d)
        self.on[d] = True
        if outcome == "restored":
            self.fresh[d] = True  # the first reading will tell whether the runtime keeps the restored state
        else:
            self.after_boot["fresh"] = self.after_boot.get("fresh", 0) + 1

    def first_reading(self, d: int, reasons: list[str]) -> None:
        """Device d stepped a reading with these bad-reading `reasons`: if it is the first since a restore,
        count whether the runtime kept the restored state or reset it for the gap."""
        if self.fresh[d]:
            self.fresh[d] = False
            key = "reset_by_gap" if "gap" in reasons else "kept"
            self.after_boot[key] = self.after_boot.get(key, 0) + 1

    def fields(self) -> dict[str, Any]:
        return {"reboots": self.reboots.copy(), "restores": dict(self.restores), "after_boot": dict(self.after_boot)}
