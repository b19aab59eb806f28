"""Training-time augmentation: random affines composed after a crop's map, and colour jitter.

Geometry goes through the crop's ``Affine``, so image, mask and landmarks move together
exactly. Disc crops jitter centre and size over the range the runtime's own estimate (disc
centre from the locator, diameter from the disc-fovea distance) will produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fundusrt.runtime.geometry import Affine, about_center


@dataclass(frozen=True)
class Augment:
    rotation: float = 10.0  # degrees, uniform +-
    flip: float = 0.5  # probability of a horizontal flip (a right eye becomes a left eye)
    zoom: float = 0.05  # uniform 1 +-
    brightness: float = 0.2
    contrast: float = 0.2
    channel_gain: float = 0.05
    crop_shift: float = 0.08  # disc-crop centre jitter, sd in disc diameters
    crop_scale: float = 0.12  # disc-crop side jitter, sd of its log

    def geometry(self, rng: np.random.Generator, size: int) -> Affine:
        return about_center(
            size,
            angle=rng.uniform(-self.rotation, self.rotation),
            flip=bool(rng.random() < self.flip),
            zoom=1.0 + rng.uniform(-self.zoom, self.zoom),
        )

    def disc_crop(self, rng: np.random.Generator, center, diameter: float) -> tuple[tuple[float, float], float]:
        dx, dy = rng.normal(0.0, self.crop_shift * diameter, 2)
        return (center[0] + dx, center[1] + dy), diameter * float(np.exp(rng.normal(0.0, self.crop_scale)))

    def colour(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        x = image.astype(np.float32)
        mean = x.mean()
        contrast = 1.0 + rng.uniform(-self.contrast, self.contrast)
        gain = (1.0 + rng.uniform(-self.brightness, self.brightness)) * (
            1.0 + rng.uniform(-self.channel_gain, self.channel_gain, 3)
        )
        x = ((x - mean) * contrast + mean) * gain.astype(np.float32)
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)
