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
    """``(x / 255 - mean) / std`` per channel, or a per-image z-score when ``per_image``."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    per_image: bool = False

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) or (3, H, W) float32."""
        x = np.asarray(images)
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) or (H, W, 3) images, got shape {x.shape}")
        x = x.astype(np.float32)
        if self.per_image:
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
        return cls(mean=tuple(d["mean"]), std=tuple(d["std"]), per_image=bool(d.get("per_image", False)))
