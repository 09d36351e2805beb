"""Both postprocessing paths (one row in Python float64, many rows in NumPy float32) agree to float32 precision."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.bundle.loader import Bundle
from edge_runtime.stream.heads.classify import ClassifyHead
from tests.edge_runtime.conftest import make_model, numpy_bundle


@pytest.mark.parametrize("rows", [3, 5, 700])  # row by row, by reductions, column by column
def test_batch_softmax_equals_the_one_row_path(tmp_path, rows):
    post = ClassifyHead(Bundle.open(numpy_bundle(tmp_path / "b", make_model(output_size=4))).manifest)
    logits = np.random.default_rng(0).normal(0, 30, size=(rows, 4)).astype(np.float32)
    logits[0] = [2.0, 7.0, 7.0, -1.0]  # a tie: the first maximum wins on both paths
    probs, k, p = post.probabilities_batch(logits)
    for i in range(rows):
        values, label, prob = post.probabilities(logits[i].tolist())
        np.testing.assert_allclose(probs[i], values, rtol=1e-6, atol=1e-7)
        assert label == f"c{k[i]}" and prob == pytest.approx(p[i], rel=1e-6)
    assert k[0] == 1 and np.isfinite(probs).all()
