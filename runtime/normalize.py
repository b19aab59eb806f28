"""Turning RGB uint8 crops into the float tensors the models take.

The constants are data, not code: they are saved with each checkpoint and in the bundle
manifest, and the runtime reads them from there (ImageNet's are only the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """``(x / 255 - mean) / std`` per channel; a per-image z-score when ``per_image``; and with
    ``per_channel`` too, each channel's z-score over the field of view (its non-black pixels), the
    black beyond it left at 0.

    The last is colour and contrast normalisation: a camera's white balance, exposure and contrast
    scale or shift each channel of the whole field, and each channel's z-score undoes exactly that,
    while the disc's brightness and pallor against its own surround (what glaucoma changes) stay.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    per_image: bool = False
    per_channel: bool = False

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) or (3, H, W) float32."""
        x = np.asarray(images)
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) or (H, W, 3) images, got shape {x.shape}")
        x = x.astype(np.float32)
        if self.per_image and self.per_channel:
            x = _field_z_score(x)
        elif self.per_image:
            mean = x.mean(axis=(1, 2, 3), keepdims=True)
            std = x.std(axis=(1, 2, 3), keepdims=True)
            x = (x - mean) / np.maximum(std, 1e-6)
        else:
            mean = np.asarray(self.mean, np.float32) * 255.0
            inv_std = 1.0 / (np.asarray(self.std, np.float32) * 255.0)
            x = (x - mean) * inv_std
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x[0] if single else x

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            per_image=bool(d.get("per_image", False)),
            per_channel=bool(d.get("per_channel", False)),
        )


def _field_z_score(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) float32: each image's channels to mean 0 and standard deviation 1 over the pixels
    inside its field of view (any channel above 0: every view is black beyond the field), 0 outside."""
    inside = (x.max(axis=3, keepdims=True) > 0).astype(np.float32)
    count = np.maximum(inside.sum(axis=(1, 2), keepdims=True), 1.0)
    mean = (x * inside).sum(axis=(1, 2), keepdims=True) / count
    centred = (x - mean) * inside
    std = np.sqrt((centred * centred).sum(axis=(1, 2), keepdims=True) / count)
    return centred / np.maximum(std, 1.0)  # at least one grey level: a flat channel stays flat
