"""fundusrt.runtime: the lean screening runtime.

Depends on numpy, OpenCV, Pillow (headers only) and ONNX Runtime; TensorRT and
cuda-python only when present. It never imports torch or any other part of fundusrt:
training imports *this* package for the pre- and post-processing both must share.
"""

__version__ = "0.1.0"
