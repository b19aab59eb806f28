"""fundusrt.export: ONNX graphs, precision variants, parity checks, engines and the bundle.

Imports ``fundusrt.train`` for the models and ``fundusrt.runtime`` for the bundle format,
which the runtime owns.
"""
