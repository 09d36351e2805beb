"""Device profiles: how much slower than this host a Raspberry Pi steps the same bundle, and its memory.

A device's per-reading latency is modelled as

    latency = host_step_time * factor * jitter (+ an occasional scheduling hiccup)

`host_step_time` is measured on this machine, one reading at a time, with the simulated bundle and backend
(see `firmware_sim.latency`). `factor = host_score / device_score`, where both scores are Geekbench 6
single-core results. One core is the right comparison: the device loop steps one reading at a time on one
thread. Geekbench's mix (integer, floating point, interpreters, ML kernels) tracks a Python-plus-NumPy loop
better than a single synthetic kernel; Jeff Geerling's phpbench figures (an interpreter, one thread) on the
same boards give the same ratios within ~10% (Pi 5 437085, Pi 4 187221, i.e. 2.33x; Geekbench 6: 3.13x).

Device scores (Geekbench 6.x single-core, Geekbench Browser results collected by Jeff Geerling,
https://github.com/geerlingguy/sbc-reviews, web/data/results.yml):
    Raspberry Pi 5 model B (Cortex-A76 @ 2.4 GHz)      904    (issue #21)
    Raspberry Pi 4 model B (Cortex-A72 @ 1.8 GHz)      289    (issue #4)
    Raspberry Pi 3 model B+ (Cortex-A53 @ 1.4 GHz)     115    Geekbench 5: 108 (issue #16), scaled by the
                                                              Pi 4's Geekbench 6/5 ratio (289 / 271)
    Raspberry Pi Zero 2 W (Cortex-A53 @ 1.0 GHz)        82    the Pi 3B+'s core and memory at 1.0/1.4 of
                                                              its clock; Gamess & Hernandez (2022),
                                                              "Performance evaluation of different Raspberry
                                                              Pi models", find the Zero 2 W and 3B+ alike
                                                              clock for clock
Host score: Geekbench 6 single-core of the machine running the simulation. It cannot be measured without
Geekbench, so it is a setting (`--host-score`, scenario `[host] score`); the default, 1500, is a 2020s x86-64
server core under virtualisation such as this project's CI machine (AMD EPYC, Zen 3). A modern laptop core
scores 2500-3500: give its score for a faithful factor, or give `factor` directly, e.g. from
`edgernn bench` run on the real device divided by the same on the host.

Memory is the board's RAM (the smallest model sold, the conservative choice), used to check that the
bundle, the runtime and its state fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from edgernn.errors import ConfigError

DEFAULT_HOST_SCORE = 1500.0


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    title: str
    score: float  # Geekbench 6 single-core
    memory_mb: int
    source: str
    jitter: float = 0.15  # sigma of the log-normal spread of step times around the median
    hiccup_rate: float = 2e-3  # share of readings that meet a scheduling hiccup (non-real-time Linux)
    hiccup_ms: float = 8.0  # mean extra delay of a hiccup, exponential
    factor_override: float | None = None  # a measured factor replaces score / host score

    def factor(self, host_score: float = DEFAULT_HOST_SCORE) -> float:
        """How many times longer a reading takes here than on the host."""
        if self.factor_override is not None:
            return self.factor_override
        return host_score / self.score

    def with_factor(self, factor: float) -> DeviceProfile:
        if not factor > 0:
            raise ConfigError(f"profile factor must be > 0, got {factor!r}")
        return replace(self, factor_override=float(factor))

    def to_dict(self, host_score: float = DEFAULT_HOST_SCORE) -> dict[str, Any]:
        d = asdict(self)
        d["factor"] = self.factor(host_score)
        d["host_score"] = host_score
        return d


_GEERLING = "Geekbench 6 single-core, github.com/geerlingguy/sbc-reviews"
PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile(
            "pi-zero-2w",
            "Raspberry Pi Zero 2 W",
            82.0,
            512,
            "Pi 3B+ score x 1.0/1.4 GHz (same Cortex-A53); Gamess & Hernandez 2022",
            jitter=0.2,
            hiccup_rate=5e-3,
            hiccup_ms=15.0,
        ),
        DeviceProfile(
            "pi-3b-plus", "Raspberry Pi 3 Model B+", 115.0, 1024, "Geekbench 5: 108 (sbc-reviews #16) x 289/271"
        ),
        DeviceProfile("pi-4", "Raspberry Pi 4 Model B", 289.0, 1024, f"{_GEERLING} #4"),
        DeviceProfile("pi-5", "Raspberry Pi 5", 904.0, 2048, f"{_GEERLING} #21", jitter=0.1, hiccup_ms=4.0),
    )
}
ALIASES = {"pi-zero": "pi-zero-2w", "zero2w": "pi-zero-2w", "pi-3": "pi-3b-plus", "pi4": "pi-4", "pi5": "pi-5"}


def get_profile(name: str) -> DeviceProfile:
    """A profile by name (`pi-zero-2w`, `pi-3b-plus`, `pi-4`, `pi-5`), or a ConfigError listing them."""
    key = ALIASES.get(name, name)
    if key not in PROFILES:
        raise ConfigError(f"unknown device profile {name!r}; allowed: {', '.join(PROFILES)}")
    return PROFILES[key]
