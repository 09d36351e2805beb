"""Labelled recordings as users have them: which data train whole, the given split files, small-data defaults.

A file of separate recordings, one label each (a gesture, a motion, a machine run), is classified by the
device at the end of a recording streamed from a reset. Such data train whole, each recording from a zero
state (right-padded and masked, `trainer.windows`), with the loss on its last reading: the same reading the
streaming evaluation and the exporter score. `train_on="auto"` chooses this when every series of a
labelled many-to-one file holds a single label.
"""

from __future__ import annotations

from typing import Any

from edgernn.errors import ConfigError, DataError
from trainer.data import load
from trainer.prep import Prepared
from trainer.sequences import as_recordings
from trainer.table import DataLike, Table
from trainer.tasks import task_for

TRAIN_ON = ("auto", "recordings", "windows")
#: readout "auto": the candidates trained (each from the same seed), the one with the lower validation loss kept
AUTO_READOUTS = ("max", "mean")


def load_tables(
    data: DataLike,
    *,
    val_data: DataLike | None,
    test_data: DataLike | None,
    train_on: str,
    task: str,
    per_step: bool,
    **load_kw: Any,
) -> tuple[Table, dict[str, Table], bool]:
    """(training table, given "val"/"test" tables, whether they are whole recordings)."""
    if train_on not in TRAIN_ON:
        raise ConfigError(f"unsupported train_on {train_on!r}; supported: {', '.join(TRAIN_ON)}")
    many_to_one = task_for(task).labelled and not per_step
    if train_on == "recordings" and not many_to_one:
        raise ConfigError(
            "train_on='recordings' classifies whole recordings (one label each): it needs task 'classify' "
            f"without per_step, got task {task!r}{' with per_step' if per_step else ''}"
        )
    table = load(data, task=task, per_step=per_step, **load_kw)
    given = {
        name: load(d, task=task, per_step=per_step, **load_kw)
        for name, d in (("val", val_data), ("test", test_data))
        if d is not None
    }
    whole = False
    if many_to_one and train_on != "windows":
        # a long-format file is recordings when each series (--series-column) holds one label
        auto = table.kind == "streams" and load_kw.get("series_column") is not None and len(table.series) > 1
        if table.kind == "sequences" or train_on == "recordings" or auto:
            converted = as_recordings(table, required=train_on == "recordings", what="series")
            if converted is not None:
                table, whole = converted, True
    if whole:
        for name, t in given.items():
            what = f"series of the {'validation' if name == 'val' else 'test'} data"
            converted = as_recordings(t, required=True, what=what)
            assert converted is not None
            given[name] = converted
    for name, t in given.items():
        if t.features != table.features:
            raise DataError(
                f"the {'validation' if name == 'val' else 'test'} data has features {t.features}, the training "
                f"data {table.features}; both files need the same feature columns"
            )
    return table, given, whole


def recordings_info(prep: Prepared) -> dict[str, Any]:
    """What the checkpoint says about whole-recording training; its presence makes `trainer.metrics` report
    accuracy against the fraction of each recording seen, and the exporter's warm-up follow."""
    lengths = [len(s) for s in prep.train.series]
    return {
        "label_at": "the last reading of each recording, streamed from a reset",
        "shortest": min(lengths),
        "longest": max(lengths),
        "count": {p.name: len(p.series) for p in prep.parts()},
    }


def choose_readout(losses: dict[str, float]) -> dict[str, Any]:
    """readout auto: the candidate with the lower best validation loss (cross-entropy at each validation
    recording's last reading, as the device is judged); losses by readout."""
    chosen = min(losses, key=lambda k: losses[k])
    why = ", ".join(f"{v:.4g} ({k})" for k, v in losses.items())
    return {"chosen": chosen, "why": f"best validation loss {why}", "validation_loss": losses}
