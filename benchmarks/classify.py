"""Classification benchmark on public UCR sets that ship inside the aeon package (nothing is downloaded).

For each set: the official train and test files (`aeon/datasets/data/<Name>/<Name>_TRAIN.ts`, `_TEST.ts`)
are written to the long CSV format `edgernn train` reads (one recording per `recording`, one label each);
`edgernn train` learns on the train file with its defaults (whole recordings, small-data defaults, the
official test file given as --test-data), `edgernn export` writes every artifact, and each artifact is
streamed through `edge_runtime.Predictor` over the official test file one reading at a time, every
recording from a reset, its label the last prediction it made (at its last reading; with --pool K at its
last full pool), as a device runs it.

    python -m benchmarks.classify [--quick] [--out DIR] [--sets GunPoint,ArrowHead]

Published figures beside ours (accuracy on the same official test split):
  1-NN DTW   UCR Time Series Classification Archive 2018 (Dau et al.), DataSummary.csv, "DTW (w=100)" error
             rate (full warping window), as 1 - error (each figure checked against a copy of that file:
             benchmarks/CLASSIFY.md names it).
  recurrent  TWIESN (time-warping invariant echo state network), the recurrent network of Fawaz et al. 2019,
             "Deep learning for time series classification: a review", DMKD 33(4); mean of the 5 runs in the
             authors' results/results-ucr-128.csv (github.com/hfawaz/dl-4-tsc).
  best deep  the best mean of the 8 networks in that same file (FCN, ResNet, MCDCNN, ...), named.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DTW_SOURCE = "UCR archive 2018 DataSummary, DTW (w=100)"
DEEP_SOURCE = "Fawaz et al. 2019, dl-4-tsc results-ucr-128.csv (mean of 5 runs)"


@dataclass(frozen=True)
class Published:
    dtw: float  # 1-NN DTW accuracy, full window
    rnn: float  # TWIESN (recurrent) accuracy
    deep: float  # best deep network accuracy
    deep_model: str


# mean accuracies computed from results-ucr-128.csv (columns dataset_name, classifier_name, accuracy)
PUBLISHED: dict[str, Published] = {
    "GunPoint": Published(dtw=0.907, rnn=0.989, deep=1.000, deep_model="FCN"),
    "ItalyPowerDemand": Published(dtw=0.950, rnn=0.871, deep=0.966, deep_model="MCDCNN"),
    "ArrowHead": Published(dtw=0.703, rnn=0.689, deep=0.843, deep_model="FCN"),
    "OSULeaf": Published(dtw=0.591, rnn=0.628, deep=0.980, deep_model="ResNet"),
    "ACSF1": Published(dtw=0.640, rnn=0.592, deep=0.916, deep_model="ResNet"),
    "PickupGestureWiimoteZ": Published(dtw=0.660, rnn=0.616, deep=0.744, deep_model="FCN"),
}
SETS = tuple(PUBLISHED)
# The two long sets cost 10-20x the others per epoch (whole recordings of 427 and 1460 readings): batches of
# 16 halve their optimizer steps, and ACSF1 trains one network, not the default three (one took 14 min
# here; three would take three times that). Flags given after these win; the table states them.
LIMITS: dict[str, tuple[str, ...]] = {
    "OSULeaf": ("--batch-size", "16"),
    "ACSF1": ("--batch-size", "16", "--ensemble", "1"),
}
QUICK_SET = "GunPoint"
QUICK_EPOCHS = 25


def ts_file(name: str, split: str) -> Path:
    """The .ts file of a set as installed with aeon (a FileNotFoundError names the path if it is not)."""
    import aeon

    path = Path(aeon.__file__).parent / "datasets" / "data" / name / f"{name}_{split.upper()}.ts"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not installed; pip install 'aeon>=1.0' (edgernn[bench])")
    return path


def load_split(name: str, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Recordings (L_i, C) float32 and their labels (str) of one official split, read from the local file."""
    from aeon.datasets import load_from_ts_file

    x, y = load_from_ts_file(str(ts_file(name, split)))
    recordings = [np.asarray(r, dtype=np.float32).T for r in x]  # aeon: (C, L_i) -> (L_i, C)
    return [r[np.isfinite(r).all(axis=1)] for r in recordings], np.asarray(y).astype(str)


def write_csv(recordings: list[np.ndarray], labels: np.ndarray, path: Path) -> None:
    """Long format: recording, t, x0..x{C-1}, label; one row per reading."""
    import pandas as pd

    lengths = [len(r) for r in recordings]
    x = np.concatenate(recordings)  # (sum L_i, C)
    frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
    frame.insert(0, "t", np.concatenate([np.arange(n, dtype=np.float64) for n in lengths]))
    frame.insert(0, "recording", np.repeat([f"r{i:04d}" for i in range(len(recordings))], lengths))
    frame["label"] = np.repeat(labels, lengths)
    frame.to_csv(path, index=False)


def stream_accuracy(bundle: Path, artifact: str, recordings: list[np.ndarray], labels: np.ndarray) -> float:
    """Accuracy of one artifact run by the device runtime: all recordings stepped side by side, one reading
    per recording per call (`step_many`), each from a reset, its label the last prediction it made (at its
    last reading, or with `--pool K` at its last full pool)."""
    from edge_runtime import Predictor

    lengths = np.array([len(r) for r in recordings])
    ids = [f"r{i}" for i in range(len(recordings))]
    final: list[str | None] = [None] * len(recordings)
    with Predictor.load(bundle, artifact=artifact) as p:
        for k in range(int(lengths.max())):
            active = np.flatnonzero(lengths > k)
            x = np.stack([recordings[i][k] for i in active])  # (N, C)
            preds = p.step_many(x, [ids[i] for i in active], t=float(k))
            for i, pred in zip(active, preds, strict=True):
                if pred is not None:  # the last one made: a pooling bundle's last readings may only fill a pool
                    final[i] = pred.label
    return float(np.mean([f == y for f, y in zip(final, labels, strict=True)]))


def _edgernn(*args: str, in_process: bool = False) -> None:
    """Run the CLI as a user would: in a child process pinned to one thread (the machine is shared), or
    in this process (the short test: no second start-up of torch)."""
    if in_process:
        from edgernn.cli import main

        if main(list(args)) != 0:
            raise RuntimeError(f"edgernn {args[0]} failed")
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "edgernn", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"edgernn {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def run_set(
    name: str,
    out: Path,
    *,
    quick: bool,
    train_args: tuple[str, ...] = (),
    formats: str = "onnx,tflite,numpy",
    in_process: bool = False,
    reuse: bool = False,
) -> dict[str, Any]:
    """Train, export and stream one set; `train_args` are extra `edgernn train` flags, `formats` the export's.
    `reuse`: a bundle already in `out` from an earlier run is streamed again, not retrained."""
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_split(name, "train")
    test_x, test_y = load_split(name, "test")
    if reuse and (work / "bundle" / "manifest.json").is_file():
        summary = json.loads((work / "run" / "summary.json").read_text())
        train_s, export_s = summary["training"]["seconds"], None
    else:
        train_s, export_s = _train_export(name, work, train_x, test_x, train_y, test_y, quick, train_args, formats,
                                          in_process)  # fmt: skip
        summary = json.loads((work / "run" / "summary.json").read_text())
    return _row(name, work, summary, train_x, train_y, test_x, test_y, train_s, export_s)


def _train_export(
    name: str,
    work: Path,
    train_x: list[np.ndarray],
    test_x: list[np.ndarray],
    train_y: np.ndarray,
    test_y: np.ndarray,
    quick: bool,
    train_args: tuple[str, ...],
    formats: str,
    in_process: bool,
) -> tuple[float, float]:
    """(train, export) wall seconds."""
    write_csv(train_x, train_y, work / "train.csv")
    write_csv(test_x, test_y, work / "test.csv")
    # the CLI's defaults, plus the columns and the official test file; torch pinned to one thread
    args = [
        "train", "--data", str(work / "train.csv"), "--test-data", str(work / "test.csv"),
        "--task", "classify", "--target", "label", "--series-column", "recording", "--time-column", "t",
        "--heldout-readings", str(sum(len(r) for r in test_x)), "--out", str(work / "run"), "--no-progress",
    ]  # fmt: skip
    if quick:
        args += ["--epochs", str(QUICK_EPOCHS)]
    started = time.perf_counter()
    flags = [*LIMITS.get(name, ()), *train_args]
    (work / "flags.txt").write_text(shlex.join(flags) + "\n")  # the table's settings, also for --reuse
    _edgernn(*args, *flags, in_process=in_process)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    _edgernn(
        "export",
        str(work / "run"),
        "--out",
        str(work / "bundle"),
        "--formats",
        formats,
        "--no-progress",
        in_process=in_process,
    )
    return train_s, time.perf_counter() - started


def _row(
    name: str,
    work: Path,
    summary: dict[str, Any],
    train_x: list[np.ndarray],
    train_y: np.ndarray,
    test_x: list[np.ndarray],
    test_y: np.ndarray,
    train_s: float,
    export_s: float | None,
) -> dict[str, Any]:
    """Stream every artifact of the set's bundle over the official test recordings; the table row."""
    manifest = json.loads((work / "bundle" / "manifest.json").read_text())
    streamed: dict[str, float] = {}
    table: dict[str, float | None] = {}
    for art in manifest["artifacts"]:
        if art.get("status") == "failed":
            continue
        streamed[art["id"]] = stream_accuracy(work / "bundle", art["id"], test_x, test_y)
        table[art["id"]] = manifest["quality"].get(art["id"], {}).get("accuracy")
    pub = PUBLISHED[name]
    fp32 = [v for k, v in streamed.items() if k.endswith("fp32")]
    int8 = [v for k, v in streamed.items() if k.endswith("int8")]
    lengths = [len(r) for r in test_x + train_x]
    return {
        "set": name,
        "train": len(train_x),
        "test": len(test_x),
        "classes": len(set(train_y)),
        "length": [min(lengths), max(lengths)],
        "fp32": min(fp32) if fp32 else None,
        "int8": min(int8) if int8 else None,
        "pytorch": summary["metrics"]["streaming"]["accuracy"],
        "by_fraction": summary["metrics"]["streaming"].get("accuracy_by_fraction"),
        "artifacts": streamed,
        "quality_table": table,
        "dtw": pub.dtw,
        "rnn": pub.rnn,
        "deep": pub.deep,
        "deep_model": pub.deep_model,
        "epochs": summary["training"]["epochs_run"],
        "best_epoch": summary["training"]["best_epoch"],
        "train_s": round(train_s, 1),
        "export_s": None if export_s is None else round(export_s, 1),
        "limits": " ".join(LIMITS.get(name, ())),
        "flags": (work / "flags.txt").read_text().strip() if (work / "flags.txt").is_file() else "",
        "model": f"{summary['model']['cell']} {summary['model']['num_layers']}x{summary['model']['hidden_size']}",
    }


def run(
    quick: bool,
    out: Path,
    sets: tuple[str, ...] | None = None,
    reuse: bool = False,
    train_args: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Every set (quick: GunPoint only, few epochs); rows as `markdown` prints them, also written to
    classify.json and classify.md in `out` after each set. `train_args`: more `edgernn train` flags."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = sets or ((QUICK_SET,) if quick else SETS)
    rows = []
    for name in chosen:
        rows.append(run_set(name, out, quick=quick, reuse=reuse, train_args=train_args))
        (out / "classify.json").write_text(json.dumps(rows, indent=2) + "\n")
        (out / "classify.md").write_text(markdown(rows) + "\n")
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table: our streamed accuracy (the worst artifact of each precision) next to published results."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = [
        "| set | train / test | length | flags | ours fp32 | ours int8 | 1-NN DTW | TWIESN (RNN) | best deep | "
        "train s | epochs |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        length = f"{r['length'][0]}" if r["length"][0] == r["length"][1] else f"{r['length'][0]}-{r['length'][1]}"
        lines.append(
            f"| {r['set']} | {r['train']} / {r['test']} | {length} | {r.get('flags') or 'defaults'} | "
            f"{pct(r['fp32'])} | {pct(r['int8'])} | "
            f"{pct(r['dtw'])} | {pct(r['rnn'])} | {pct(r['deep'])} ({r['deep_model']}) | {r['train_s']:.0f} | "
            f"{r['epochs']} |"
        )
    lines.append("")
    lines.append(
        f"Accuracy in % on the official test split. Ours: {rows[0]['model'] if rows else ''}, trained with "
        "`edgernn train` defaults on the official train file, every artifact streamed by edge_runtime one "
        "reading at a time from a reset (the column shows the worst artifact of each precision). "
        f"Sources: 1-NN DTW: {DTW_SOURCE}; TWIESN and best deep: {DEEP_SOURCE}. "
        "Train s: wall time of `edgernn train` on this machine (one thread)."
    )
    capped = [f"{r['set']} ({r['limits']})" for r in rows if r.get("limits")]
    if capped:
        lines.append(f"Set by the runner for time on 2 shared cores: {'; '.join(capped)}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.classify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_SET} only, {QUICK_EPOCHS} epochs")
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="working and result directory")
    ap.add_argument("--sets", help=f"comma-separated subset of {', '.join(SETS)}")
    ap.add_argument("--reuse", action="store_true", help="stream the bundles of an earlier run in --out again")
    ap.add_argument(
        "--train-args",
        default="",
        help='more `edgernn train` flags for every set, one quoted string (e.g. "--readout mean --epochs 100"); '
        "they win over the caps of the long sets",
    )
    ns = ap.parse_args(argv)
    sets = tuple(s.strip() for s in ns.sets.split(",")) if ns.sets else None
    unknown = [s for s in sets or () if s not in PUBLISHED]
    if unknown:
        ap.error(f"unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")
    rows = run(ns.quick, ns.out, sets, reuse=ns.reuse, train_args=tuple(shlex.split(ns.train_args)))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
