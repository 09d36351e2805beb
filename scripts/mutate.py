#!/usr/bin/env python3
"""Mutation check: plant known bugs one at a time in a scratch copy of the repository and expect the tests
that guard each spot to fail. A mutation the tests let through ("survived") is a hole in the suite.

    scripts/mutate.py                     # every mutation; a table; exit 1 if any survived
    scripts/mutate.py --list              # the mutations and the tests each one runs
    scripts/mutate.py --only block-nan-passes-range-check --only seq-margin-dropped-after-unclean-stop

The working tree is never touched: the files git knows (tracked, and untracked but not ignored) are copied
to a temporary directory, each mutation edits one file there and the file is put back before the next one.
Only the tests named for a mutation run, so the whole check takes minutes, not the suite's time. The tests
first run once on the unmutated copy: a test that already fails there would "catch" every mutation.

Each mutation replaces one exact snippet; when the code it targets changes, the snippet no longer matches,
the mutation is reported "stale" and the check fails, so the list is kept in step with the code.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file to edit, relative to the repository root
    old: str  # exact snippet, present once
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions
    why: str  # the bug a user would meet


# `StreamTable.load`: a field absent from an older checkpoint keeps `_alloc`'s fresh value
_SAVE_LOOP = (
    "        for name in _PER_SLOT:\n"
    "            if name in arrays:\n"
    "                getattr(self, name)[...] = arrays[name]\n"
)
_COPY_LOOP = "        for name in _PER_SLOT:\n            getattr(self, name)[dst] = getattr(other, name)[src]\n"
_RESTORE_TESTS = ("tests/edge_runtime/test_predictor.py", "-k", "restore or restart or round_trip")
_STATUS = "        return status_payload(state, self.device, self._counters, figures)\n"
_STATUS_TEST = ("tests/edge_runtime/publish/test_security.py::test_status_payload_holds_no_configuration",)
_FLEET_TESTS = ("tests/firmware_sim/test_accounting.py",)
# the fleet's per-reading path (`FleetSteps.each`): a questioned reading stepped alone, booked to its device
_FLAG_ONE = "                books.count(books.flagged, reason, one)\n            out_dev.append(d)\n"
_PREP_TESTS = ("tests/trainer/test_data.py", "-k", "not fitted_run")  # the one test that trains a model


def _skip(loop: str, field: str) -> str:
    """The loop over `_PER_SLOT` with `field` left out (its body, any number of lines, indented under an if)."""
    head, body = loop.split("\n", 1)
    inner = "".join(f"    {line}" for line in body.splitlines(keepends=True))
    return f'{head}\n            if name != "{field}":\n{inner}'


MUTATIONS: tuple[Mutation, ...] = (
    # --- the six holes of issue 21 -----------------------------------------------------------------------
    Mutation(
        "block-nan-passes-range-check",
        # the range verdict step_block's plain path and the fleet's routing share (`InputGuard.outside`)
        "edge_runtime/stream/guard.py",
        "        return ~np.all((x >= self.lo_arr) & (x <= self.hi_arr), axis=-1)  # NaN fails both\n",
        "        return np.any((x < self.lo_arr) | (x > self.hi_arr), axis=-1)\n",
        ("tests/edge_runtime/test_block.py", "tests/edge_runtime/test_questioned.py"),
        "a NaN in a block takes the plain path and enters the stream's state unflagged",
    ),
    *(
        Mutation(
            f"restore-skips-{field}",
            "edge_runtime/stream/table.py",
            _SAVE_LOOP,
            _skip(_SAVE_LOOP, field),
            _RESTORE_TESTS,
            f"a restarted device forgets {field} (held value, anomaly score or rollout change)",
        )
        for field in ("last_good", "prev_fc", "last_y")
    ),
    Mutation(
        "restore-stream-skips-last_good",
        "edge_runtime/stream/table.py",
        _COPY_LOOP,
        _skip(_COPY_LOOP, "last_good"),
        _RESTORE_TESTS,
        "restore_stream (a simulated reboot) forgets the held values",
    ),
    Mutation(
        "target-scaler-fit-on-all-series",
        "trainer/prep.py",
        "fit_scaler(np.concatenate([s.target for s in train.series if s.target is not None]), scaler)",
        "fit_scaler(np.concatenate([s.target for s in table.series if s.target is not None]), scaler)",
        _PREP_TESTS,
        "test data leaks into the forecast target scaler",
    ),
    Mutation(
        "status-leaks-client-id",
        "edge_runtime/publish/paho_publisher.py",
        _STATUS,
        '        figures["client"] = self.client_id\n' + _STATUS,
        _STATUS_TEST,
        "the retained status names the MQTT client id",
    ),
    Mutation(
        "status-leaks-user-name",
        "edge_runtime/publish/paho_publisher.py",
        _STATUS,
        '        figures["user"] = self.config.username\n' + _STATUS,
        _STATUS_TEST,
        "the retained status names the broker login",
    ),
    Mutation(
        "unknown-command-exits-0",
        "edgernn/cli.py",
        "        parser.parse_args(args)  # --help, --version, or an error naming the allowed commands\n",
        "        try:\n            parser.parse_args(args)\n        except SystemExit:\n            return 0\n",
        ("tests/test_cli.py",),
        "a typo in a script's edgernn command goes unnoticed",
    ),
    Mutation(
        "fleet-drop-not-counted",
        "firmware_sim/steps.py",
        "                books.count(books.dropped, reasons[0] if reasons else self._held_one, one)\n",
        "                pass\n",
        _FLEET_TESTS,
        "a reading that made no prediction vanishes from the report",
    ),
    Mutation(
        "fleet-not-sampled-not-counted",
        "firmware_sim/fleet.py",
        "        self.books.not_sampled += ~sampled\n",
        "",
        _FLEET_TESTS,
        "a dropout or a powered-off device looks like a device that was never asked",
    ),
    Mutation(
        "fleet-flag-on-the-wrong-device",
        "firmware_sim/steps.py",
        _FLAG_ONE,
        _FLAG_ONE.replace("one)", "(one + 1) % len(self.ids))"),
        _FLEET_TESTS,
        "a fault is reported on a device it never hit",
    ),
    Mutation(
        "fleet-produced-counts-unsampled",
        "firmware_sim/fleet.py",
        "        self.books.produced[dev] += 1\n",
        "        self.books.produced[dev] += 1\n"
        "        self.books.count(self.books.dropped, 'off', np.flatnonzero(~sampled))\n"
        "        self.books.produced[np.flatnonzero(~sampled)] += 1\n",
        _FLEET_TESTS,
        "readings a device never took are booked as produced and dropped (the sums still balance)",
    ),
    # --- more spots a user depends on --------------------------------------------------------------------
    Mutation(
        "outbox-row-deleted-before-puback",
        "edge_runtime/publish/paho_publisher.py",
        "                self._inflight[info.mid] = row\n",
        "                self._inflight[info.mid] = row\n                self._outbox.ack([row])\n",
        (
            "tests/edge_runtime/publish/test_delivery.py",
            "tests/edge_runtime/publish/test_publisher_conformance.py",
            "-k",
            "sigkilled_and_restarted or (outage_fills and paho)",
        ),
        "a prediction handed to paho is deleted before the broker acknowledged it: a broker crash loses it",
    ),
    Mutation(
        "input-scaler-skipped-in-training",
        "trainer/prep.py",
        "part.x.append(s.x if table.tokens else fitted.transform(s.x).astype(np.float32))",
        "part.x.append(s.x if table.tokens else s.x.astype(np.float32))",
        _PREP_TESTS,
        "the model trains on raw readings, the device feeds it scaled ones",
    ),
    Mutation(
        "input-scaler-skipped-in-block",
        "edge_runtime/stream/block.py",
        "        xs = ((x - g.offset) / g.scale).astype(np.float32)",
        "        xs = x.astype(np.float32)",
        ("tests/edge_runtime/test_block.py",),
        "step_block feeds raw readings to the model",
    ),
    Mutation(
        "seq-margin-dropped-after-unclean-stop",
        "edge_runtime/publish/outbox.py",
        "        start = int(n) + margin if n else 0",
        "        start = int(n) if n else 0",
        ("tests/edge_runtime/publish/test_memory_outbox.py", "-k", "resume"),
        "after a crash, a lost outbox gives again the seqs handed out since the last checkpoint: subscribers drop "
        "new predictions as repeats",
    ),
    Mutation(
        "int8-scale-for-unsigned-range",
        "edge_runtime/backends/numpy_weights.py",
        "    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)",
        "    scale = np.where(amax > 0, amax / 255.0, 1.0).astype(np.float32)",
        ("tests/edge_runtime/test_numpy_backend.py", "-k", "int8"),
        "int8 weights clip at half their range: the int8 artifact drifts from the fp32 model",
    ),
)


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # caught | survived | stale | broken
    caught_by: list[str]
    seconds: float


def _scratch_copy(dest: Path) -> None:
    """The files git knows about (tracked, and untracked but not ignored), as they are in the working tree."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _pytest(repo: Path, args: list[str], python: str, timeout: float) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [python, "-m", "pytest", *args, "-q", "-rfE", "-p", "no:cacheprovider"]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return 124, f"timed out after {timeout:.0f} s: {exc}"
    return proc.returncode, proc.stdout + proc.stderr


def _failed(output: str) -> list[str]:
    return sorted({m.group(1) for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", output, re.M)})


def run(mutations: list[Mutation], python: str, timeout: float, keep: bool) -> list[Outcome]:
    scratch = Path(tempfile.mkdtemp(prefix="edgernn-mutate-"))
    try:
        _scratch_copy(scratch)
        print(f"scratch copy: {scratch}", file=sys.stderr)
        # the baseline: every selected test passes on the unmutated copy
        for tests in dict.fromkeys(m.tests for m in mutations):
            t0 = time.monotonic()
            rc, out = _pytest(scratch, list(tests), python, timeout)
            if rc != 0:
                sys.exit(
                    f"mutate: {' '.join(tests)} fails before any mutation (exit {rc}); fix it first:\n{out[-3000:]}"
                )
            print(f"baseline: {' '.join(tests)} passes ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        outcomes = []
        for m in mutations:
            outcomes.append(_one(scratch, m, python, timeout))
            o = outcomes[-1]
            print(f"{m.name}: {o.verdict} ({o.seconds:.0f} s) {' '.join(o.caught_by)}", file=sys.stderr)
        return outcomes
    finally:
        if keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _one(repo: Path, m: Mutation, python: str, timeout: float) -> Outcome:
    target = repo / m.path
    original = target.read_text()
    t0 = time.monotonic()
    if original.count(m.old) != 1:
        return Outcome(m, "stale", [f"snippet found {original.count(m.old)} times in {m.path}"], 0.0)
    target.write_text(original.replace(m.old, m.new))
    try:
        rc, out = _pytest(repo, list(m.tests), python, timeout)
    finally:
        target.write_text(original)
    failed = _failed(out)
    if rc == 1 and failed:
        verdict = "caught"
    elif rc == 0:
        verdict = "survived"
    else:  # the mutant did not import, or pytest itself failed: not a test catching a bug
        verdict = "broken"
        failed = failed or [out.strip().splitlines()[-1] if out.strip() else f"pytest exit {rc}"]
    return Outcome(m, verdict, failed, time.monotonic() - t0)


def table(outcomes: list[Outcome]) -> str:
    lines = ["| mutation | file | caught | test(s) that caught it |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        tests = "<br>".join(o.caught_by) if o.caught_by else "-"
        mark = "yes" if o.verdict == "caught" else f"**no ({o.verdict})**"
        lines.append(f"| {o.mutation.name} | {o.mutation.path} | {mark} | {tests} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Plant known bugs one at a time in a scratch copy; expect the tests guarding each to fail.",
        epilog="Exit status: 0 when every mutation is caught, 1 when one survived, is stale or broke the import.",
    )
    ap.add_argument("--list", action="store_true", help="print the mutations and their tests, run nothing")
    ap.add_argument("--only", action="append", metavar="NAME", help="run this mutation (repeatable)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with the test dependencies (default: this)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutation's test run (default 600)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    args = ap.parse_args(argv)
    chosen = list(MUTATIONS)
    if args.only:
        names = {m.name for m in MUTATIONS}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            ap.error(f"unknown mutation {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.path:40} {' '.join(m.tests)}\n{'':34} {m.why}")
        return 0
    outcomes = run(chosen, args.python, args.timeout, args.keep)
    print(table(outcomes))
    bad = [o for o in outcomes if o.verdict != "caught"]
    print(f"\n{len(outcomes) - len(bad)} of {len(outcomes)} mutations caught", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
