"""The device: where readings come from, its settings, the measurements of `edgernn bench`."""
