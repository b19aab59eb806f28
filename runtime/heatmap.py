"""Evidence maps for a grader: the classifier's class activation maps drawn over the photograph and
over the disc crop.

A CAM (Zhou et al. 2016, the method the seed cites) is the members' linear head applied at each
position of their last stage, so its mean over the view is the logit the member decided on. The
classifier graph returns one map per member that has one (``Ensemble.heatmaps``) at a 32nd of its
input; the maps of one view are averaged, scaled to 0..1 within the image (where the evidence is
strongest *in this photograph*, as CAMs are shown), enlarged to the view and mapped back through the
view's own affine, so they land on the pixels the model saw.
"""

from __future__ import annotations

import cv2
import numpy as np

from .field_of_view import FieldOfView

ALPHA = 0.5  # the colour's share where the evidence is strongest; weaker evidence shows more photograph


def scaled(cam: np.ndarray) -> np.ndarray:
    """A map scaled to 0..1 (all zeros where it is flat: no position stands out)."""
    cam = np.asarray(cam, np.float32)
    low, high = float(cam.min()), float(cam.max())
    if not high - low > 1e-6 * max(1.0, abs(high)):
        return np.zeros_like(cam)
    return (cam - low) / (high - low)


def over_picture(picture: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The RGB picture with ``heat`` (0..1, same size) in colour, more opaque where it is stronger."""
    colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.round(heat * 255)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    weight = (ALPHA * heat)[..., None]
    return np.uint8(np.round(picture * (1.0 - weight) + colours * weight))


def view_heat(cams: np.ndarray, size: int) -> np.ndarray:
    """The mean of one view's maps (K, h, w), scaled to 0..1 and enlarged to the ``size``² view."""
    return cv2.resize(scaled(np.mean(cams, axis=0)), (size, size), interpolation=cv2.INTER_LINEAR)


def over_photograph(image: np.ndarray, cams: np.ndarray, fov: FieldOfView, size: int) -> np.ndarray:
    """The maps of the full view (the field of view's square at the classifier's ``size``²), drawn over
    the whole photograph at its own resolution, inside the field of view only (the model saw black
    beyond it)."""
    h, w = image.shape[:2]
    heat = cv2.warpAffine(
        view_heat(cams, size), fov.view_transform(size).matrix, (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0,
    )  # fmt: skip
    if fov.circular:
        inside = np.zeros((h, w), np.float32)
        cv2.circle(inside, (round(fov.center[0]), round(fov.center[1])), round(fov.radius), 1.0, -1, cv2.LINE_AA)
        heat *= inside
    return over_picture(image, heat)


def over_crop(crop: np.ndarray, cams: np.ndarray) -> np.ndarray:
    """The maps of the disc crop drawn over that crop (an RGB square cut through the same affine)."""
    return over_picture(crop, view_heat(cams, crop.shape[0]))
