"""The seed's four recurrent models, each trained on data it makes itself and run on the device runtime.

    python -m examples.char_rnn          character-level vanilla RNN; samples text one character at a time
    python -m examples.sentiment_lstm    2-layer LSTM over word tokens (embedding, padding) -> pos / neg
    python -m examples.gru_forecast      GRU forecaster, 60-step windows of 5 features, time-ordered split
    python -m examples.bilstm_window     bidirectional LSTM classifier, run in window mode on the device

Each `main(out, quick=False)` returns the numbers it prints; tests/test_examples.py asserts them.
"""
