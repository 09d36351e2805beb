"""edge_runtime: run an edgernn bundle on a device, one reading at a time, hidden state kept.

The only package a Raspberry Pi installs. Importing it loads NumPy and the standard library only;
onnxruntime, LiteRT / tflite-runtime and paho-mqtt are imported by the backend or publisher that uses them.
"""

from edge_runtime.manifest import Manifest
from edge_runtime.prediction import Prediction

__all__ = ["Manifest", "Prediction"]
