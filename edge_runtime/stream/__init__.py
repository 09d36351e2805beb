"""One reading in, one prediction out: the Predictor, its stream table, input guard, task heads."""
