"""Outbox throughput on a slow disk: every fsync made slow on purpose (an LD_PRELOAD shim, as SD cards flush in
tens of ms), predictions published at a steady rate to a real Mosquitto, delivery counted.

    python scripts/bench_slow_fsync.py --fsync-ms 30 --rate 2000 --n 20000
    python scripts/bench_slow_fsync.py --compare /tmp/old-tree     # the same run on another checkout, side by side

Needs `cc` (to build tests/fixtures/slowfsync.c) and `mosquitto`. Prints one JSON line per run and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_shim(out: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("needs a C compiler (cc) to build the slow-fsync shim: apt-get install -y gcc")
    so = out / "slowfsync.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(ROOT / "tests/fixtures/slowfsync.c"), "-ldl"],
                   check=True)  # fmt: skip
    return so


def child(url: str, n: int, rate: float, state: str) -> None:
    """Runs under the shim: publish n predictions at `rate`, then wait for the broker to acknowledge them."""
    from edge_runtime.publish import BrokerConfig, open_publisher
    from edge_runtime.stream.prediction import Prediction

    pub = open_publisher(url, "dev1", state_dir=state, config=BrokerConfig(connect_timeout=10.0))
    t0 = time.monotonic()
    for i in range(n):
        pub.publish(Prediction(seq=0, time=1.7e9 + i / rate, stream="dev1", values=[0.1, 0.2, 0.7], label="walk"))
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    produced_s = time.monotonic() - t0
    at_end = pub.delivered
    pub.flush(120)
    total_s = time.monotonic() - t0
    delivered = pub.delivered
    pub.close()
    print(json.dumps({
        "produced_per_s": round(n / produced_s), "delivered_by_end_of_production": at_end,
        "delivered": delivered, "lag_after_production_s": round(total_s - produced_s, 2),
        "delivered_per_s": round(delivered / total_s),
    }))  # fmt: skip


def run_one(tree: Path, so: Path, url: str, args: argparse.Namespace, work: Path) -> dict:
    state = tempfile.mkdtemp(dir=work)
    env = {**os.environ, "PYTHONPATH": str(tree), "LD_PRELOAD": str(so), "EDGERNN_FSYNC_MS": str(args.fsync_ms),
           "EDGERNN_FSYNC_COUNT": str(Path(state) / "fsyncs"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", url, str(args.n), str(args.rate), state]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tree)
    if out.returncode:
        raise SystemExit(out.stderr)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["fsyncs"] = sum(int(x) for x in (Path(state) / "fsyncs").read_text().split())
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fsync-ms", type=int, default=30)
    ap.add_argument("--rate", type=float, default=2000.0, help="predictions per second published")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--compare", type=Path, help="another checkout to measure the same way (e.g. before a change)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        url, n, rate, state = args.child
        child(url, int(n), float(rate), state)
        return
    from firmware_sim.broker import free_port, wait_port

    with tempfile.TemporaryDirectory(prefix="edgernn-slowfsync-") as tmp:
        work = Path(tmp)
        so = build_shim(work)
        port = free_port()
        broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port("127.0.0.1", port, 10)
            url = f"mqtt://127.0.0.1:{port}"
            trees = [("this tree", ROOT)] + ([("compare", args.compare.resolve())] if args.compare else [])
            rows = []
            for name, tree in trees:
                figures = run_one(tree, so, url, args, work)
                print(json.dumps({"tree": name, "fsync_ms": args.fsync_ms, **figures}))
                rows.append((name, figures))
        finally:
            broker.terminate()
            broker.wait(10)
    print(f"\nfsync {args.fsync_ms} ms, {args.n} predictions published at {args.rate:g}/s:")
    for name, f in rows:
        print(f"  {name:10} delivered {f['delivered_per_s']:>6}/s overall, {f['delivered_by_end_of_production']:>6} "
              f"by the end of publishing, lag {f['lag_after_production_s']} s, {f['fsyncs']} fsyncs")  # fmt: skip


if __name__ == "__main__":
    main()
