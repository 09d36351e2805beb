"""The bundle: its manifest, opening and checking it, golden vectors, which artifact runs."""
