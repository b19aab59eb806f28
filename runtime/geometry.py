"""Affine maps between original pixels and model-input pixels, and the crops that use them.

Convention (OpenCV's): pixel centres sit at integer coordinates, so pixel ``i`` covers
``[i - 0.5, i + 0.5]``. Every crop returns the ``Affine`` that takes an original-image point
to the crop; its inverse takes the model's answers (points, masks) back to original pixels.
The same functions serve training and the runtime, so there is no train/serve skew.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Affine:
    """A 2x3 matrix mapping (x, y) in a source image to (x', y') in a destination image."""

    matrix: np.ndarray

    def __post_init__(self):
        matrix = np.asarray(self.matrix, dtype=np.float64)
        if matrix.shape != (2, 3):
            raise ValueError(f"an affine matrix is 2x3, got {matrix.shape}")
        object.__setattr__(self, "matrix", matrix)

    @classmethod
    def identity(cls) -> Affine:
        return cls(np.eye(2, 3))

    def __call__(self, points) -> np.ndarray:
        """Map points of shape (2,) or (N, 2)."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def inverse(self) -> Affine:
        return Affine(cv2.invertAffineTransform(self.matrix))

    def then(self, other: Affine) -> Affine:
        """The map that applies ``self`` first, then ``other``."""
        a = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        b = np.vstack([other.matrix, [0.0, 0.0, 1.0]])
        return Affine((b @ a)[:2])

    @property
    def scale(self) -> float:
        """Destination pixels per source pixel (geometric mean of the two axes)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def square_transform(center, side: float, size: int) -> Affine:
    """The map from the source square of ``side`` pixels centred on ``center`` onto a ``size``² image."""
    if side <= 0 or size <= 0:
        raise ValueError(f"square side and output size must be positive, got {side} and {size}")
    s = size / float(side)
    cx, cy = (float(c) for c in center)
    offset = size / 2.0 - 0.5
    return Affine([[s, 0.0, offset - s * cx], [0.0, s, offset - s * cy]])


def warp(image: np.ndarray, affine: Affine, size: int) -> np.ndarray:
    """Resample ``image`` onto a ``size``² grid through ``affine`` (source -> destination), black outside.

    Shrinking by two or more first box-filters the image by an integer factor (``INTER_AREA``,
    anti-aliased), then one bilinear ``warpAffine`` does the rest of the scale, the shift,
    any rotation or flip, and the padding. The geometry is exactly ``affine`` either way.
    """
    source, to_source = image, Affine.identity()
    factor = int(1.0 / affine.scale) if affine.scale > 0 else 1
    if factor >= 2:
        x0, y0, x1, y1 = _source_box(image.shape, affine, size, factor)
        roi = image[y0:y1, x0:x1]
        source = cv2.resize(roi, ((x1 - x0) // factor, (y1 - y0) // factor), interpolation=cv2.INTER_AREA)
        shift = 0.5 / factor - 0.5
        to_source = Affine([[1 / factor, 0, shift - x0 / factor], [0, 1 / factor, shift - y0 / factor]])
    matrix = to_source.inverse().then(affine).matrix
    return cv2.warpAffine(
        source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def _source_box(shape, affine: Affine, size: int, factor: int) -> tuple[int, int, int, int]:
    """The part of the source that the destination square sees, with a margin for the filters, on
    the ``factor`` grid (so box-filtered blocks are those of the whole image: same pixels, less work)."""
    h, w = shape[:2]
    corners = affine.inverse()([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    margin = 2 * factor
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
    x0, y0 = max(x0 // factor * factor, 0), max(y0 // factor * factor, 0)
    x1, y1 = min(x1, w // factor * factor), min(y1, h // factor * factor)
    x1, y1 = x0 + max((x1 - x0) // factor, 1) * factor, y0 + max((y1 - y0) // factor, 1) * factor
    return int(x0), int(y0), int(x1), int(y1)


def warp_to_original(array: np.ndarray, affine: Affine, shape, *, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Map a model-space array (mask, probability map) back onto the original (H, W) image grid.

    ``affine`` is the original-to-model map a crop returned. Use bilinear interpolation on
    probabilities and threshold afterwards; nearest-neighbour on hard labels gives steps.
    """
    h, w = shape[:2]
    return cv2.warpAffine(
        array,
        affine.matrix,
        (int(w), int(h)),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def disc_crop_transform(center, disc_diameter: float, size: int, *, factor: float) -> Affine:
    """Original pixels -> the ``size``² disc crop: the square of ``factor`` disc diameters around the
    disc centre. Training, the parity check and the runtime all cut their disc crops through this."""
    if not disc_diameter > 0:
        raise ValueError(f"disc diameter must be positive, got {disc_diameter}")
    return square_transform(center, factor * disc_diameter, size)


def about_center(size: int, *, angle: float = 0.0, flip: bool = False, zoom: float = 1.0) -> Affine:
    """A rotation (degrees, counter-clockwise as seen), horizontal flip and zoom about the centre of a
    ``size``² image: compose it after a crop's map to augment image and targets alike."""
    c = (size - 1) / 2.0
    rotation = cv2.getRotationMatrix2D((c, c), angle, zoom)
    if flip:
        rotation = np.array([[-1.0, 0.0, 2 * c], [0.0, 1.0, 0.0]]) @ np.vstack([rotation, [0.0, 0.0, 1.0]])
    return Affine(rotation)
