"""`edgernn train`: every option of `trainer.fitting.fit` as a flag, with its default in --help."""

from __future__ import annotations

import argparse
from typing import Any

from edgernn.config import CELLS, TASKS
from trainer.defaults import help_default

DESCRIPTION = """\
Train an RNN, LSTM or GRU on sensor data and write a run directory:
  checkpoint.pt  (loads with torch.load(weights_only=True)), heldout.npz (held-out test streams, raw units),
  curve.png (training curve), summary.json (what is printed at the end).

Data: a CSV in long format (a time column, an optional series/device column, feature columns, target
column(s)); or, with --task generate, a .txt file (a character model). The split is by time within each
series (train / validation / test, never shuffled across time); the scaler is fit on the training split only.
Test metrics are measured streaming: one reading at a time with state carried, as the device runs.
"""

EPILOG = """\
examples:
  # activity from IMU readings, one label per window of 100 readings
  edgernn train --data readings.csv --time-column t --series-column device --target activity \\
      --task classify --cell gru --hidden 64 --layers 2 --window 100 --out runs/imu
  # the next 10 readings of temp, trained statefully over long streams (truncated BPTT)
  edgernn train --data plant.csv --time-column t --target temp --task forecast --horizon 10 \\
      --mode stateful --out runs/temp
  # a drifting sensor: learn the change from the latest reading; baselines use a daily cycle of 24 readings
  edgernn train --data room.csv --time-column t --target temp --task forecast --horizon 4 \\
      --target-mode delta --season 24 --out runs/room
  # anomaly score with a threshold at a 0.5% false-alarm rate on validation
  edgernn train --data pump.csv --time-column t --task anomaly --false-alarm-rate 0.005 --out runs/pump
  # at most 2 minutes of epochs on a busy laptop: stops at the best epoch so far and says so
  edgernn train --data readings.csv --time-column t --target activity --task classify --max-train-seconds 120 \\
      --out runs/quick
  # a character model
  edgernn train --data corpus.txt --task generate --cell lstm --hidden 128 --window 64 --out runs/chars
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an RNN, LSTM or GRU on sensor data (CSV or text) -> run directory",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="CSV in long format, or a .txt file with --task generate")
    d.add_argument("--task", required=True, choices=TASKS, help="what the model predicts")
    d.add_argument(
        "--target",
        action="append",
        metavar="COLUMN",
        help="label column (classify) or target feature (forecast/anomaly; repeat for several; default: every feature)",
    )
    d.add_argument("--features", help="comma-separated feature columns, in model order (default: every other column)")
    d.add_argument("--time-column", help="time column: seconds or timestamps (default: row order, no sample rate)")
    d.add_argument("--series-column", help="series / device id column; each series is split by time on its own")
    d.add_argument("--anomaly-column", help="0/1 ground truth of anomalies (anomaly task): scored, never learnt")
    d.add_argument("--drop-nan", action="store_true", help="drop rows with NaN/inf (counted) instead of failing")
    d.add_argument("--scaler", choices=("standard", "minmax"), default="standard", help="feature scaling")
    d.add_argument("--val-fraction", type=float, default=0.15, help="share of each series for validation")
    d.add_argument("--test-fraction", type=float, default=0.15, help="share of each series for test (the end)")
    d.add_argument(
        "--split-by",
        choices=("auto", "time", "sequence"),
        default="auto",
        help="time: each series split in time; sequence: whole series (recordings) assigned to train / "
        "validation / test, stratified by class (auto: sequence for labelled recordings, else time)",
    )
    d.add_argument(
        "--split-order",
        choices=("stratified", "file"),
        default="stratified",
        help="--split-by sequence: stratified by class and shuffled with --seed (every class in every split), "
        "or in file order (the last recordings are the test split)",
    )
    d.add_argument("--val-data", metavar="CSV", help="validation split as a file (same columns): no split is carved")
    d.add_argument("--test-data", metavar="CSV", help="test split as a file, e.g. a benchmark's official test file")

    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=CELLS, default="gru", help="recurrent cell")
    m.add_argument("--hidden", type=int, default=64, help="hidden units per layer")
    m.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    m.add_argument("--dropout", type=float, help="dropout between stacked layers" + help_default("dropout"))
    m.add_argument("--bidirectional", action="store_true", help="bidirectional (runs in window mode on a device)")
    m.add_argument("--embedding-dim", type=int, default=32, help="token embedding size (token input)")
    m.add_argument("--per-step", action="store_true", help="classify: a label for every reading (many-to-many)")
    m.add_argument("--horizon", type=int, default=1, help="forecast: readings ahead predicted at once")
    m.add_argument(
        "--target-mode",
        choices=("level", "delta", "auto"),
        default="level",
        help="forecast/anomaly: learn the target itself (level) or its change from the latest reading (delta: "
        "extrapolates trends and level shifts; the device adds the reading back); auto: train both; delta if the "
        "validation split drifted from the training level or delta wins there clearly (a paired test), else level",
    )
    m.add_argument(
        "--season",
        type=int,
        metavar="N",
        help="forecast/anomaly: readings per cycle for the seasonal-naive baseline (default: detected on the "
        "training split)",
    )

    t = p.add_argument_group("training")
    t.add_argument(
        "--mode",
        choices=("windows", "stateful"),
        default="windows",
        help="windows: independent windows from zero state; stateful: truncated BPTT over streams",
    )
    t.add_argument(
        "--train-on",
        choices=("auto", "recordings", "windows"),
        default="auto",
        help="classify: recordings: each series (one label each) trained whole from a zero state and judged at "
        "its last reading, as the device streams it; windows: cut into --window windows; auto: recordings "
        "when every --series-column series holds one label",
    )
    t.add_argument(
        "--recording-loss",
        choices=("last", "every"),
        help="whole recordings: the loss on each recording's last reading only, or on every reading (its label "
        "at each; a gradient reaches every step directly); judged at the last reading either way"
        + help_default("recording_loss"),
    )
    t.add_argument(
        "--readout",
        choices=("last", "mean", "max", "auto"),
        help="what the classifier head reads: last, the network's output at the reading; mean / max, the running "
        "mean / maximum of its outputs since the reset (carried as more state tensors, so the device streams it "
        "on every backend; a whole recording's is read at its last reading); auto: trains max and mean, keeps "
        "the lower validation loss (twice the training time)" + help_default("readout"),
    )
    t.add_argument(
        "--augment",
        help="whole recordings: each training batch changed at random every epoch, 'none' or a comma list of "
        "jitter (noise), scale (gain per channel), warp (resampled faster or slower), crop (a slice of at least "
        "90%%); validation and test recordings stay as they are" + help_default("augment"),
    )
    t.add_argument(
        "--pool",
        type=int,
        default=1,
        metavar="K",
        help="classify: the model steps once per K readings, on their mean (from each reset; a trailing part of "
        "fewer than K readings is not stepped on), here and on the device: K times fewer steps on long "
        "recordings (default: 1, off)",
    )
    t.add_argument(
        "--lr-schedule",
        choices=("none", "plateau"),
        help="plateau: halve the learning rate when the validation loss has not improved for a quarter of "
        "--patience epochs (down to 1/64 of --lr)" + help_default("lr_schedule"),
    )
    t.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="train K networks from seeds --seed .. --seed+K-1 on one split and run them as one network K times "
        "wider whose output is their mean: steadier where a few dozen recordings make one network swing with "
        "its seed, at K times the training time and the device's work per reading" + help_default("ensemble"),
    )
    t.add_argument("--window", type=int, default=100, help="readings per training window")
    t.add_argument("--stride", type=int, help="readings between window starts (default: window // 4)")
    t.add_argument("--chunk", type=int, help="stateful: readings per TBPTT chunk (default: window)")
    t.add_argument(
        "--segment", type=int, help="stateful: readings per contiguous lane (default: >= 4 chunks, enough for a batch)"
    )
    t.add_argument("--epochs", type=int, help="most epochs (early stopping may end sooner)" + help_default("epochs"))
    t.add_argument(
        "--patience", type=int, help="epochs without validation improvement before stopping" + help_default("patience")
    )
    t.add_argument(
        "--max-train-seconds",
        type=float,
        metavar="SECONDS",
        help="wall-clock budget for the epochs: no epoch starts that would end past it (judged by the last "
        "epoch's time); the best epoch so far is kept, and a line says so (default: none, --epochs alone)",
    )
    t.add_argument("--batch-size", type=int, help="windows (or lanes) per batch" + help_default("batch_size"))
    t.add_argument("--lr", type=float, help="Adam learning rate" + help_default("lr"))
    t.add_argument("--weight-decay", type=float, help="Adam weight decay" + help_default("weight_decay"))
    t.add_argument("--clip", type=float, default=1.0, help="gradient norm clip, before every optimizer step")
    t.add_argument("--seed", type=int, default=0, help="random seed (numpy, torch, python)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train")

    o = p.add_argument_group("head and output")
    o.add_argument(
        "--false-alarm-rate",
        type=float,
        default=0.01,
        help="anomaly: share of normal validation readings the device flags one by one (is_anomaly)",
    )
    o.add_argument(
        "--false-alarms-per-day",
        type=float,
        help="anomaly: alarms a healthy device may raise per day, e.g. 1; sets an alarm rule in the bundle (the "
        "score smoothed over a calibrated number of readings, and its threshold) on the streaming validation "
        "scores, which edgernn simulate counts alarms by (default: none, the per-reading flag)",
    )
    o.add_argument(
        "--warmup",
        type=int,
        help="readings after a reset that are not scored (default: window - 1 for windows-trained "
        "many-to-one and bidirectional models, else 0)",
    )
    o.add_argument("--heldout-readings", type=int, default=16384, help="cap on readings kept in heldout.npz")
    o.add_argument("--out", required=True, help="run directory to write (replaced if it holds an earlier run)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)


def handle(ns: argparse.Namespace) -> int:
    from trainer.fitting import fit

    target: Any = ns.target[0] if ns.target and len(ns.target) == 1 else ns.target
    fit(
        ns.data,
        task=ns.task,
        target=target,
        out=ns.out,
        features=[f.strip() for f in ns.features.split(",") if f.strip()] if ns.features else None,
        time_column=ns.time_column,
        series_column=ns.series_column,
        anomaly_column=ns.anomaly_column,
        cell=ns.cell,
        hidden=ns.hidden,
        layers=ns.layers,
        window=ns.window,
        horizon=ns.horizon,
        bidirectional=ns.bidirectional,
        dropout=ns.dropout,
        per_step=ns.per_step,
        embedding_dim=ns.embedding_dim,
        mode=ns.mode,
        stride=ns.stride,
        chunk=ns.chunk,
        segment=ns.segment,
        epochs=ns.epochs,
        batch_size=ns.batch_size,
        lr=ns.lr,
        weight_decay=ns.weight_decay,
        clip=ns.clip,
        patience=ns.patience,
        seed=ns.seed,
        device=ns.device,
        scaler=ns.scaler,
        val_fraction=ns.val_fraction,
        test_fraction=ns.test_fraction,
        split_by=ns.split_by,
        split_order=ns.split_order,
        train_on=ns.train_on,
        recording_loss=ns.recording_loss,
        readout=ns.readout,
        augment=ns.augment,
        lr_schedule=ns.lr_schedule,
        ensemble=ns.ensemble,
        val_data=ns.val_data,
        test_data=ns.test_data,
        drop_nan=ns.drop_nan,
        false_alarm_rate=ns.false_alarm_rate,
        false_alarms_per_day=ns.false_alarms_per_day,
        warmup=ns.warmup,
        heldout_readings=ns.heldout_readings,
        progress=not ns.no_progress,
        verbose=True,
        target_mode=ns.target_mode,
        season=ns.season,
        max_train_seconds=ns.max_train_seconds,
        pool=ns.pool,
    )
    return 0


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and shows each real default (not None/False, unless said in the help)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"
