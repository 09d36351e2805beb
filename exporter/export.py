"""`export_bundle`: checkpoint -> artifacts -> quality measured the device way -> golden vectors -> bundle.

Everything is written into a temporary directory beside the target and renamed into place at the end,
so an export that fails (or is interrupted) never leaves a bundle that looks complete. A requested
format that fails aborts the export unless it is in `allow_missing`; then the bundle is written
without it and the manifest records the failed artifact with its reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_runtime.backends import backend_class
from edge_runtime.bundle.golden import golden_outputs
from edge_runtime.bundle.loader import sha256_file
from edge_runtime.bundle.manifest import ARTIFACT_FORMATS, GOLDEN_FILE, MANIFEST_FILE, PRECISIONS, Manifest
from edgernn.errors import ConfigError, DataError, EdgeRNNError, ExportError
from exporter import artifacts, quality
from exporter.manifest_build import base_manifest
from exporter.replay_readings import write_replay
from trainer.checkpoint import HELDOUT_FILE, Checkpoint, Heldout, load_checkpoint

log = logging.getLogger("edgernn.exporter")
GOLDEN_READINGS = 64


def _choices(values: Sequence[str] | str, allowed: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in (values.split(",") if isinstance(values, str) else values) if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise ConfigError(f"unsupported {what} {bad or items!r}; allowed: {', '.join(allowed)}")
    return [a for a in allowed if a in items]


def _batches(values: Sequence[int]) -> list[int]:
    try:
        sizes = sorted({1, *(int(v) for v in values)})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"TFLite batch sizes must be integers >= 1, got {list(values)!r}") from exc
    if sizes[0] < 1 or sizes[-1] > 65536:
        raise ConfigError(f"TFLite batch sizes must be between 1 and 65536, got {sizes}")
    return sizes


def _load(source: str | Path | Checkpoint, heldout: Heldout | None) -> tuple[Checkpoint, Heldout]:
    if isinstance(source, Checkpoint):
        if heldout is None:
            raise ConfigError("export_bundle(checkpoint) needs heldout=: quality is measured on held-out streams")
        return source, heldout
    ckpt = load_checkpoint(source)
    if heldout is None:
        run_dir = Path(source) if Path(source).is_dir() else Path(source).parent
        path = run_dir / HELDOUT_FILE
        if not path.is_file():
            raise DataError(f"no {HELDOUT_FILE} in {run_dir}: the held-out streams are needed to measure quality")
        try:
            heldout = Heldout.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc
    return ckpt, heldout


def _check_heldout(ckpt: Checkpoint, heldout: Heldout) -> None:
    cfg = ckpt.config
    x = heldout.x
    want_dims = 2 if cfg.tokens else 3
    if x.ndim != want_dims or (not cfg.tokens and x.shape[2] != cfg.input_size) or x.shape[1] < 2:
        raise DataError(
            f"held-out x has shape {x.shape}; the {cfg.cell} model needs (streams, readings"
            + (")" if cfg.tokens else f", {cfg.input_size})")
        )


def _model(ckpt: Checkpoint) -> Any:
    try:
        return ckpt.build_model()
    except (RuntimeError, KeyError) as exc:  # load_state_dict: missing or misshapen weights
        raise ExportError(f"the checkpoint's weights do not fit its ModelConfig: {str(exc)[:300]}") from exc


def _target_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise ConfigError(f"--out {out} is a non-empty directory that is not a bundle; refusing to replace it")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def export_bundle(
    run_dir_or_checkpoint: str | Path | Checkpoint,
    out_dir: str | Path,
    *,
    formats: Sequence[str] | str = ARTIFACT_FORMATS,
    precisions: Sequence[str] | str = PRECISIONS,
    tflite_batches: Sequence[int] = (1,),
    allow_missing: Sequence[str] | str = (),
    heldout: Heldout | None = None,
    progress: bool = True,
) -> Manifest:
    """Export a trained run into a verified bundle at `out_dir`; returns its manifest."""
    fmts = _choices(formats, ARTIFACT_FORMATS, "format")
    precs = _choices(precisions, PRECISIONS, "precision")
    allowed = _choices(allow_missing, ARTIFACT_FORMATS, "--allow-missing format") if allow_missing else []
    batches = _batches(tflite_batches)
    out = Path(out_dir).expanduser().absolute()
    _target_dir(out)
    ckpt, held = _load(run_dir_or_checkpoint, heldout)
    _check_heldout(ckpt, held)
    manifest = base_manifest(ckpt)
    model = _model(ckpt)
    window = manifest.window.length if manifest.window else 0

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    threads = torch.get_num_threads()
    # the reference is stepped one reading at a time: tiny ops that extra threads only slow down
    torch.set_num_threads(1)
    try:
        _fill(manifest, ckpt, held, model, tmp, fmts, precs, batches, allowed, window, progress)
        for part in ("provenance", "quality", "warmup"):  # NumPy scalars from the checkpoint or metrics -> JSON
            setattr(manifest, part, _jsonable(getattr(manifest, part)))
        manifest.write(tmp)
        Manifest.load(tmp)  # the manifest we wrote must read back
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    return manifest


def _fill(
    manifest: Manifest,
    ckpt: Checkpoint,
    held: Heldout,
    model: Any,
    tmp: Path,
    fmts: list[str],
    precs: list[str],
    batches: list[int],
    allowed: list[str],
    window: int,
    progress: bool,
) -> None:
    from tqdm import tqdm

    jobs = list(artifacts.plan(model, fmts, precs, batches, window))
    bar = tqdm(
        total=2 * len(jobs) + 3,
        desc="export",
        unit="step",
        file=sys.stderr,
        disable=not progress or not sys.stderr.isatty(),
        leave=False,
    )
    failed: dict[str, str] = {}
    with bar:
        for job in jobs:
            art = job.artifact
            bar.set_description(f"export {art.id}")
            if job.needs in failed:
                reason = f"needs {job.needs}, which failed"
            else:
                try:
                    artifacts.build(job, tmp)
                    reason = ""
                except ExportError as exc:
                    reason = str(exc)
            if reason:
                failed[art.id] = reason
                art.status, art.reason, art.file = "failed", reason, ""
                if art.format not in allowed:
                    raise ExportError(
                        f"{art.id} failed: {reason}. No bundle was written; pass --allow-missing {art.format} "
                        f"to write one without {art.format} artifacts"
                    )
                log.warning("%s failed (allowed missing): %s", art.id, reason)
            manifest.artifacts.append(art)
            bar.update()

        bar.set_description("export: PyTorch reference")
        x = quality.scaled_inputs(ckpt, held.x)
        reference = quality.measure_reference(ckpt, manifest, model, held)
        manifest.quality["pytorch"] = reference.metrics
        bar.update()
        for art in manifest.artifacts:
            if art.usable:
                bar.set_description(f"export: measuring {art.id}")
                backend = _backend(manifest, art, tmp)
                try:
                    manifest.quality[art.id] = quality.measure(ckpt, manifest, held, art, backend, x, reference)
                finally:
                    backend.close()
                if art.status == "out_of_tolerance":
                    log.warning("%s is OUT OF TOLERANCE: %s", art.id, art.reason)
            else:
                manifest.quality[art.id] = {"status": "failed", "reason": art.reason}
            bar.update()

        bar.set_description("export: warm-up")
        manifest.warmup = quality.measure_warmup(ckpt, manifest, model, held)
        bar.update()
        bar.set_description("export: golden vectors")
        _write_golden(manifest, ckpt, held, model, tmp)
        # the readings `edgernn simulate` replays when no built-in signal fits; a pooling bundle's held-out
        # data are pool means, which the device would pool again, so it carries none (replay raw CSVs instead)
        if not ckpt.config.tokens and manifest.pool == 1:
            manifest.replay = write_replay(held, tmp)
        bar.update()


def _backend(manifest: Manifest, art: Any, tmp: Path) -> Any:
    cls = backend_class(art.format)
    if not cls.available():
        raise ExportError(f"cannot measure {art.id}: the {cls.name} backend is not installed on this machine")
    try:
        return cls(manifest, art, tmp / art.file)
    except EdgeRNNError as exc:
        raise ExportError(f"the runtime cannot load the {art.id} it was just given: {exc}") from exc


def _write_golden(manifest: Manifest, ckpt: Checkpoint, held: Heldout, model: Any, tmp: Path) -> None:
    """Golden vectors from the first held-out stream: long enough to fill a window and run past it."""
    n = int(held.lengths[0]) if held.lengths is not None else held.x.shape[1]
    want = GOLDEN_READINGS + (manifest.window.length if manifest.window else 0)
    raw = held.x[0, : min(n, want)]
    x_scaled = quality.scaled_inputs(ckpt, raw)
    arrays: dict[str, np.ndarray] = {"x": raw, "x_scaled": x_scaled}
    arrays["y:pytorch"] = quality.model_outputs(manifest, model, x_scaled[None])[0]
    tolerance = {}
    for art in manifest.artifacts:
        if not art.usable:
            continue
        backend = _backend(manifest, art, tmp)
        try:
            arrays[f"y:{art.id}"] = golden_outputs(manifest, backend, x_scaled)
        finally:
            backend.close()
        tolerance[art.id] = art.tolerance
    path = tmp / GOLDEN_FILE
    with path.open("wb") as f:
        np.savez(f, allow_pickle=False, **arrays)
    manifest.golden = {
        "file": GOLDEN_FILE,
        "readings": len(raw),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "tolerance": tolerance,
        "from": "held-out stream 0, zero state, batch 1",
    }


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` with renames only: `out` is either the old bundle or the new one."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
