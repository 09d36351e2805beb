"""edge_runtime: run an edgernn bundle on a device, one reading at a time, hidden state kept.

The only package a Raspberry Pi installs. Importing it loads NumPy and the standard library only;
onnxruntime, LiteRT / tflite-runtime and paho-mqtt are imported by the backend or publisher that uses them.

    from edge_runtime import Predictor
    p = Predictor.load("bundles/imu", backend="auto", precision="int8", state_dir="/var/lib/edgernn")
    pred = p.step_one({"ax": 0.1, "ay": -0.3, ...})
"""

from edge_runtime.bundle.manifest import Manifest
from edge_runtime.stream.guard import Policies
from edge_runtime.stream.prediction import Prediction
from edge_runtime.stream.predictor import Predictor

__all__ = ["Manifest", "Policies", "Prediction", "Predictor"]
