"""The model zoo: makes TensorFlow models, never reads them (that is the frontend's job).

- `slim.py`: the TF-slim nets (ResNet V1/V2, VGG, Inception, ...), the official checkpoint
  tarballs (download, unpack) and `codegen extract`;
- `calibrate.py`: deterministic random weights whose BatchNorm statistics are calibrated so
  activations stay in a sane range, written as a checkpoint;
- `residual.py`: the residual branches of a graph, found from its wiring, for calibration;
- `keras_apps.py`: Keras applications with calibrated random weights, saved as `.keras`
  and SavedModel.
"""
