"""The real-data benchmarks under one command: classification (UCR sets) and forecasting (classic series).

    python -m benchmarks.run                    # both, full (tens of minutes on a 2-core laptop)
    python -m benchmarks.run --quick            # one set and one series, NumPy artifacts: a few minutes
    python -m benchmarks.run classify --out bench/

Every data set is read from files that ship inside the installed aeon package (the `bench` extra); nothing
is downloaded. Each benchmark trains through the `edgernn` CLI, exports, and streams every artifact one
reading at a time on the device runtime; `RESULTS.md` in --out holds both tables, the same shape as the
README's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("classify", "forecast")


def _suite(kind: str) -> tuple[Callable[..., list[dict[str, Any]]], Callable[[list[dict[str, Any]]], str]]:
    """The benchmark's `run` and `markdown`, imported only when asked for (each pulls in aeon and torch)."""
    if kind == "classify":
        from benchmarks import classify as mod
    else:
        from benchmarks import forecast as mod  # type: ignore[no-redef]
    return mod.run, mod.markdown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("kinds", nargs="*", choices=[*KINDS, []], help="which benchmarks (default: both)")
    ap.add_argument("--quick", action="store_true", help="the short form the test suite runs")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="working and result directory")
    ns = ap.parse_args(argv)
    kinds = ns.kinds or list(KINDS)
    sections = []
    for kind in kinds:
        run, markdown = _suite(kind)
        t0 = time.monotonic()
        print(f"benchmarks: {kind} ...", file=sys.stderr, flush=True)
        rows = run(ns.quick, ns.out / kind)
        sections.append(f"## {kind} ({time.monotonic() - t0:.0f} s on this machine)\n\n{markdown(rows)}\n")
    ns.out.mkdir(parents=True, exist_ok=True)
    path = ns.out / "RESULTS.md"
    path.write_text("# edgernn benchmarks\n\n" + "\n".join(sections))
    print("\n".join(sections))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
