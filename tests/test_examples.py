"""The seed's examples run end to end (train, export, run on the device runtime) and get their results."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import bilstm_window, char_rnn, gru_forecast, sentiment_lstm

pytestmark = pytest.mark.slow


def test_char_rnn_writes_text_it_learned(tmp_path: Path) -> None:
    r = char_rnn.main(tmp_path, quick=True)
    assert len(r["text"]) == 40
    # greedy sampling on the device continues the prompt the way the training text does
    assert r["prompt"] + r["text"][:20] in char_rnn.TEXT, r["text"]


def test_sentiment_lstm_on_int8_onnx(tmp_path: Path) -> None:
    r = sentiment_lstm.main(tmp_path, quick=True)
    assert {"onnx-int8", "numpy-fp32"} <= set(r["artifacts"])
    assert r["device_accuracy"] >= 0.9


def test_gru_forecast_beats_persistence_on_the_device(tmp_path: Path) -> None:
    r = gru_forecast.main(tmp_path, quick=True)
    assert r["mae"] <= 0.8 * r["persistence_mae"], r


def test_bidirectional_lstm_in_window_mode(tmp_path: Path) -> None:
    r = bilstm_window.main(tmp_path, quick=True)
    assert r["window"] == 40 and r["judged"] == 30
    assert r["device_accuracy"] >= 0.9, r
