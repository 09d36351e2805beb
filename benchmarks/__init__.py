"""Benchmarks on public data sets that ship inside released packages, with published results beside ours."""
