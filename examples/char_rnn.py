"""Character-level vanilla RNN (the seed's min-char-rnn): learn a short text, then write text one character
at a time on the device runtime, feeding each sampled character back as the next reading.

    python -m examples.char_rnn [--out runs/examples]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples._common import export, parse_out

TEXT = (
    "the sensor wakes at dawn and reads the cold air. "
    "the model keeps what it saw in its hidden state. "
    "one reading at a time, the device thinks and speaks. "
    "every prediction goes to the broker and none is lost. "
) * 6


def main(out: Path, quick: bool = False) -> dict[str, Any]:
    from edge_runtime import Predictor
    from trainer import fit
    from trainer.table import Tokens

    result = fit(
        Tokens.from_text(TEXT),
        task="generate",
        out=out / "char_rnn",
        cell="rnn",
        hidden=96,
        window=32,
        mode="stateful",
        epochs=20 if quick else 40,
        batch_size=8,
        lr=5e-3,
        progress=False,
        verbose=False,
    )
    bundle = out / "char_rnn.bundle"
    export(result.run_dir, bundle, formats=("numpy",))

    # On the device: feed a prompt one character at a time, then feed back the most probable next one.
    p = Predictor.load(bundle, backend="numpy")
    prompt = "one reading at a time, "
    pred = None
    for ch in prompt:
        pred = p.step_one(ch)
    written = []
    for _ in range(40):
        assert pred is not None and pred.label is not None
        written.append(pred.label)
        pred = p.step_one(pred.label)
    text = "".join(written)
    accuracy = result.metrics["streaming"]["accuracy"]
    print(f"char RNN: next-character accuracy {accuracy:.3f} (streaming, held-out text)")
    print(f"prompt {prompt!r} -> the device writes {text!r}")
    return {"prompt": prompt, "text": text, "accuracy": accuracy, "bundle": str(bundle)}


if __name__ == "__main__":
    out, quick = parse_out(__doc__)
    main(out, quick)
