"""edgernn: recurrent sensor models from PyTorch training to a Raspberry Pi, one reading at a time.

This small package holds what every other package shares and that needs the standard library only:
the version, the `ModelConfig` that travels trainer -> checkpoint -> bundle manifest -> runtime, and the
`edgernn` command's dispatcher.
"""

from edgernn.config import CELLS, TASKS, ModelConfig

__version__ = "0.1.0"
__all__ = ["CELLS", "TASKS", "ModelConfig", "__version__"]
