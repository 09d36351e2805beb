"""generate: a token model's predictions are published; no signal gives ground truth to score them."""

from __future__ import annotations

from firmware_sim.tasks.base import SimTask


class GenerateSim(SimTask):
    name = "generate"
