"""The NumPy backend keeps OpenBLAS on one thread only while it steps a batch."""

from __future__ import annotations

import pytest

from edge_runtime.backends import blas


def test_single_threaded_restores_the_previous_setting():
    funcs = blas._get()
    if funcs is None:
        pytest.skip("NumPy here is not linked against OpenBLAS")
    _, getter = funcs
    before = getter()
    with blas.single_threaded():
        assert getter() == 1
        with blas.single_threaded():  # re-entrant
            assert getter() == 1
    assert getter() == before
