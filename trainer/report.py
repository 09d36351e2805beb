"""What a run leaves for people: the training curve (PNG) and the summary (printed, and as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.tasks import task_for


def write_curve(
    history: list[dict[str, float]],
    best_epoch: int,
    path: Path,
    title: str,
    task: str,
    by_fraction: dict[str, float] | None = None,
    members: list[list[float]] | None = None,
) -> None:
    """The loss per epoch; with `by_fraction` (whole recordings), beside it the test accuracy against the
    fraction of each recording seen. `members` (an ensemble): every network's validation loss per epoch; the
    first network's curves are drawn in full, the others' validation dashed."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a training box or in CI
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    if by_fraction:
        fig, (ax, early) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
        early.plot([float(k) for k in by_fraction], list(by_fraction.values()), marker="o")
        early.set_xlabel("fraction of the recording seen (streamed from a reset)")
        early.set_ylabel("test accuracy")
        early.set_ylim(0, 1.02)
        early.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    first = ", network 1" if members else ""
    ax.plot(epochs, [h["train_loss"] for h in history], label=f"train{first}")
    ax.plot(epochs, [h["val_loss"] for h in history], label=f"validation{first}")
    for i, curve in enumerate((members or [])[1:], start=2):
        ax.plot(range(1, len(curve) + 1), curve, linestyle="--", linewidth=0.8, label=f"validation, network {i}")
    if members:
        title += f"; network 1 of {len(members)}"
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(task_for(task).loss_name)
    if min(min(h["train_loss"], h["val_loss"]) for h in history) > 0:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_text(s: dict[str, Any]) -> str:
    m, d, t = s["model"], s["data"], s["training"]
    dropped = f" ({d['dropped_rows']} dropped for NaN/inf)" if d["dropped_rows"] else ""
    rate = f", {d['sample_rate']:.4g} readings/s" if d.get("sample_rate") else ""
    early = ", stopped early" if t["stopped_early"] else ""
    if t.get("stopped_by_time_budget"):
        early = ", stopped by the time budget"
    readings = s["split"]["readings"]
    lines = [
        f"edgernn train: {m['cell']} {m['num_layers']}x{m['hidden_size']}"
        f"{' bidirectional' if m['bidirectional'] else ''} {m['task']} ({s['io']}), {t['mode']} mode, "
        f"{t['epochs_run']} epochs (best {t['best_epoch']}{early}) in {t['seconds']:.1f} s on {t['device']}",
        f"data: {d['source']}, {d['recordings']} {_kind(d['kind'], d['recordings'])}, {d['readings']} readings"
        f"{dropped}, {len(d['features'])} features{rate}",
        f"split by {s['split']['by']}: train {readings['train']} / validation {readings['val']} / "
        f"test {readings['test']} readings",
    ]
    for kind in ("streaming", "windowed"):
        block = s["metrics"].get(kind)
        if block:
            skip = ("how", "readings", "warning", "best_baseline", "beats_baselines")
            figures = ", ".join(_fmt(k, v) for k, v in block.items() if k not in skip and not isinstance(v, dict))
            lines.append(f"test {kind} ({block['how']}): {figures}")
            lines += _baselines(block, t)
    lines += alarm_lines(s.get("head") or {}, d.get("sample_rate"))
    lines += _ensemble(t)
    grad = t.get("grad_norm_max")
    if grad is not None:
        lines.append(
            f"gradient norm before clipping: max {grad:.3g}, clipped in {t['clipped_steps']} of {t['steps']} "
            f"steps (clip {t['clip']})"
        )
    lines.append(f"wrote {s['run_dir']}: {', '.join(s['files'])}")
    return "\n".join(lines)


def alarm_lines(head: dict[str, Any], rate: float | None) -> list[str]:
    """Anomaly: what the device's `is_anomaly` will follow, and how often a healthy device raises it."""
    a = head.get("anomaly")
    if not a:
        return []
    rule = a.get("alarm")
    if not rule:
        per_day = ""
        if rate:  # a flag per reading: the rate per reading times the readings of a day
            per_day = f"up to {a['false_alarm_rate'] * 86400 * rate:.4g} flagged readings per healthy device-day at "
            per_day += f"{rate:.4g} readings/s; "
        return [
            f"is_anomaly: one reading's score >= {a['threshold']:.4g} ({a['false_alarm_rate']:.3g} of normal readings: "
            f"{per_day}--false-alarms-per-day 1 sets an alarm rule that smooths the score)"
        ]
    v = rule.get("validation") or {}
    found = ""
    if v.get("detected") is not None:
        found = f", {v['detected']:.0%} of {v['episodes']} validation episodes detected"
    return [
        f"is_anomaly: the alarm rule, score smoothed over {rule['readings']} readings >= {rule['threshold']:.4g} "
        f"(cleared below {rule['clear']:.4g}), for {rule['false_alarms_per_day']:g} false alarms per device-day; "
        f"calibrated on {v.get('device_days', 0):.3g} normal validation device-days{found}"
    ]


def _baselines(block: dict[str, Any], training: dict[str, Any]) -> list[str]:
    """Forecast / anomaly: the baselines on the same readings, the model's skill against each, the verdict."""
    if "baselines" not in block:
        return []
    mae = block.get("mae", block.get("forecast_mae"))
    rows = ", ".join(
        f"{name.replace('_', ' ')} {v:.4g} (skill {block['skill'][name]:+.1%})"
        if block["skill"].get(name) is not None
        else f"{name.replace('_', ' ')} {v:.4g}"
        for name, v in block["baselines"].items()
    )
    season = training.get("season")
    lines = [
        f"  model MAE {mae:.4g} vs baselines on the same readings: {rows}"
        + (f"; season {season} ({training.get('season_from')})" if season else "; no season: --season N sets one")
    ]
    tm = training.get("target_mode") or {}
    if tm.get("requested") == "auto":
        lines.append(f"  target mode auto chose {tm.get('chosen')}: {tm.get('why')}")
    if block.get("warning"):
        lines.append(f"  WARNING: {block['warning']}")
    return lines


def _ensemble(t: dict[str, Any]) -> list[str]:
    """One line: the networks of an ensemble, each one's best epoch and validation loss, and the merged one's."""
    members = t.get("ensemble_members")
    if not members:
        return []
    each = ", ".join(f"seed {m['seed']}: best epoch {m['best_epoch']} of {m['epochs_run']}, {m['val_loss']:.4g}"
                     for m in members)  # fmt: skip
    return [
        f"ensemble of {len(members)} networks run as one (their mean); validation loss {t['best_val_loss']:.4g} "
        f"merged ({each}); the epochs above are the first network's"
    ]


def _kind(kind: str, count: int) -> str:
    return kind if count != 1 else kind.rstrip("s")


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{key} {value:.4g}"
    if isinstance(value, dict):  # accuracy by fraction of the recording seen
        return f"{key} " + " ".join(f"{k}:{v:.3g}" for k, v in value.items())
    if isinstance(value, list):
        return f"{key} [" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return f"{key} {value}"
