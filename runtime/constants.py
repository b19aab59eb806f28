"""The method's constants and the bundle's names, in one place.

Training uses the constants and export writes them into every bundle's manifest; the runtime
reads them from the manifest, never from here, so a bundle keeps the values it was made with.
"""

from __future__ import annotations

GRAPHS = ("locator", "segmenter", "classifier")
PRECISIONS = ("fp32", "fp16", "int8")  # the graph files a bundle holds
# What an engine can run: the files' precisions, and BF16 (the FP32 file computed in BF16 by OpenVINO).
RUN_PRECISIONS = (*PRECISIONS, "bf16")
BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
DEVICES = ("auto", "cpu", "cuda")


# Graphs that run at FP32 when a lower precision is asked for, because that precision moves their
# output beyond its parity tolerance (a graph never runs at a precision that misses it). The classifier:
# in BF16 throughout its ensemble probability moves 0.023 (86 real REFUGE photographs) and 0.026
# (phantoms) against 0.01; in INT8 (its last stage quantised) 0.135 on the real photographs against 0.02.
# The locator and the segmenter keep their tolerances at both (peaks within 1 px, masks 99.9 % equal).
# Under BF16 a graph whose bundle names its FP32 part (``fp32_until``) runs mixed instead: that part FP32,
# the rest BF16 (the classifier's drift comes from its ResNets' high-resolution first layers). The FP16
# file keeps the same part FP32 (``export.precision.to_fp16``).
KEEPS_FP32 = {"bf16": ("classifier",), "int8": ("classifier",)}


def run_precision(precision: str, graph: str, fp32_until: tuple[str, ...] = ()) -> str:
    """The precision ``graph`` runs at when ``precision`` is asked for; ``fp32_until``: the graph's
    tensors up to which it stays FP32 under BF16 (its manifest's ``fp32_until``)."""
    if precision == "bf16" and fp32_until:
        return precision
    return "fp32" if graph in KEEPS_FP32.get(precision, ()) else precision


def file_precision(precision: str) -> str:
    """The graph file an engine precision reads: BF16 computes the FP32 file."""
    return "fp32" if precision == "bf16" else precision


# Disc crops span twice the optic disc's diameter around its centre (Zhao et al.'s crops of "about
# twice the diameter of the optic disc").
CROP_FACTOR = 2.0
# The bi-distance map's exponent (Meyer et al. 2018): B^N = (1 - B / max B) ** gamma.
GAMMA = 7.0
# The disc-fovea distance in disc diameters (about 4.5 mm over a 1.8 mm disc): a disc's size from
# the two landmarks where no mask says it.
FOVEA_DISTANCE_DD = 2.5
# Laplacian-of-Gaussian peak finding on the bi-distance map, as fractions of the map's side:
# sigma 0.04 (about 20 px at 512, the scale of a gamma-7 bump), peaks at least 0.1 apart.
LOG_SIGMA = 0.04
PEAK_MIN_DISTANCE = 0.1
PEAK_THRESHOLD = 0.2
# Where a second peak may be the fovea: its distance from the disc as a fraction of the field of
# view's diameter (the map's side). The disc-fovea distance is about 4.5 mm; a 60-degree camera
# images about 17 mm of retina across (0.26), a 45-degree one 12 mm (0.37), a 20-degree one 6 mm (0.75).
FOVEA_SEPARATION = (0.18, 0.85)
# Disc and cup probabilities above this are the region the ellipse is fitted to.
MASK_THRESHOLD = 0.5
# A photograph is "uncertain" (and referred) when the ensemble's members disagree: the standard
# deviation of their glaucoma probabilities reaches this (export writes it into the bundle).
UNCERTAIN_SPREAD = 0.15
