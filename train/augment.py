"""Training-time augmentation: random affines composed after a crop's map, other cameras' fields,
and photometric changes.

Geometry goes through the crop's ``Affine``, so image, mask and landmarks move together
exactly. Disc crops jitter centre and size over the range the runtime's own estimate will
produce. The photometric changes stand for what differs between cameras, populations and
sessions: exposure, gamma, colour balance and saturation, uneven illumination, focus, noise.
Other cameras also differ in vignetting, resolution, sharpening and JPEG compression, and other
patients' retinas carry lesions (exudates, haemorrhages); each is drawn now and then. A full view
sometimes becomes another camera's field: a narrower circle (a smaller field
angle shows the retina larger) placed off centre (towards a disc-centred photograph, the fovea
near or beyond the edge); lens glare sometimes outshines the disc. Narrowing up to 1.8 and
centring half of those fields on the disc was tried and left out: it cost the fovea's precision
on REFUGE's framing, 1.39 -> 1.48 % of the width at epoch 24 of 30 on an inner hold-out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fundusrt.runtime.field_of_view import FieldOfView
from fundusrt.runtime.geometry import Affine, about_center


@dataclass(frozen=True)
class Augment:
    rotation: float = 10.0  # degrees, uniform +-
    flip: float = 0.5  # probability of a horizontal flip (a right eye becomes a left eye)
    zoom: float = 0.05  # uniform 1 +-
    brightness: float = 0.25
    contrast: float = 0.25
    gamma: float = 0.3  # the exponent's log, uniform +-
    channel_gain: float = 0.12  # colour balance, per channel, uniform 1 +-
    saturation: float = 0.3  # uniform 1 +-
    illumination: float = 0.25  # a linear brightness ramp across the view, up to this much at its edges
    blur: float = 0.25  # probability of a Gaussian blur, sigma up to 1.5 px
    noise: float = 4.0  # sd of added Gaussian noise, grey levels, uniform 0 ..
    crop_shift: float = 0.08  # disc-crop centre jitter, sd in disc diameters
    crop_scale: float = 0.15  # disc-crop side jitter, sd of its log
    field_change: float = 0.4  # probability that a full view becomes another camera's field
    field_narrowing: float = 1.4  # ... up to this much narrower
    edge: float = 0.15  # probability that a disc crop meets the photograph's edge, 0.6-1.1 disc diameters out
    glare: float = 0.25  # probability of lens glare on a full view: a white haze brighter than the disc
    # Other cameras' responses and other patients' retinas (none of them moves the truth):
    vignetting: float = 0.3  # probability of a radial falloff towards the field's edge, up to 60 % darker
    resolution: float = 0.25  # probability of a lower-resolution camera: down to 0.35 of the side, and up
    jpeg: float = 0.2  # probability of JPEG compression at quality 30-90
    sharpen: float = 0.15  # probability of a camera's unsharp masking
    lesions: float = 0.2  # probability of bright exudate-like and dark haemorrhage-like spots

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

    def field(self, rng: np.random.Generator, fov: FieldOfView, keep=None) -> FieldOfView:
        """Sometimes a narrower circle inside this one, shifted up to a little beyond its edge; ``keep``
        (a point, e.g. the disc centre) stays inside it by a tenth of its radius."""
        if not fov.circular or rng.random() >= self.field_change:
            return fov
        narrowing = rng.uniform(1.0, self.field_narrowing)
        radius = fov.radius / narrowing
        reach = (fov.radius - radius) + 0.15 * radius
        for _ in range(8):
            angle = rng.uniform(0.0, 2.0 * np.pi)
            shift = rng.uniform(0.0, reach)
            center = (fov.center[0] + shift * np.cos(angle), fov.center[1] + shift * np.sin(angle))
            if keep is None or np.hypot(keep[0] - center[0], keep[1] - center[1]) <= 0.9 * radius:
                return FieldOfView(center, radius, True, True)
        return fov

    def lens_glare(self, rng: np.random.Generator, view: np.ndarray) -> np.ndarray:
        """Sometimes a white haze in the outer field of a full view, up to brighter than the disc, as lens
        glare and reflections give it: the disc is not simply the brightest thing in a photograph."""
        if rng.random() >= self.glare:
            return view
        h, w = view.shape[:2]
        angle, distance = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(0.4, 1.0) * w / 2
        cx, cy = (w - 1) / 2 + distance * np.cos(angle), (h - 1) / 2 + distance * np.sin(angle)
        sigma = rng.uniform(0.05, 0.2) * w
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        haze = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / np.float32(2 * sigma * sigma))
        tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 1.0)], np.float32)
        out = view.astype(np.float32) + rng.uniform(80.0, 240.0) * haze[..., None] * tint
        return np.clip(out, 0, 255).astype(np.uint8) * (view.max(axis=2, keepdims=True) > 0)

    def frame_edge(self, rng: np.random.Generator, crop: np.ndarray, center, diameter: float) -> np.ndarray:
        """Sometimes black beyond a straight edge near the disc (``center``, ``diameter`` in crop pixels),
        as where a disc lies near the frame and its crop runs outside: the disc is still whole."""
        if rng.random() >= self.edge:
            return crop
        angle = rng.uniform(0.0, 2.0 * np.pi)
        distance = rng.uniform(0.6, 1.1) * diameter
        h, w = crop.shape[:2]
        beyond = (np.cos(angle) * (np.arange(w)[None, :] - center[0])
                  + np.sin(angle) * (np.arange(h)[:, None] - center[1])) > distance  # fmt: skip
        crop = crop.copy()
        crop[beyond] = 0
        return crop

    def colour(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        inside = image.max(axis=2, keepdims=True) > 0  # the black surround stays black
        image = self.spots(rng, image, inside[..., 0])
        x = image.astype(np.float32) / 255.0
        x = x ** np.float32(np.exp(rng.uniform(-self.gamma, self.gamma)))
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * np.float32(1.0 + rng.uniform(-self.saturation, self.saturation))
        mean = float(x[inside[..., 0]].mean()) if inside.any() else 0.0
        x = (x - mean) * np.float32(1.0 + rng.uniform(-self.contrast, self.contrast)) + mean
        gain = (1.0 + rng.uniform(-self.brightness, self.brightness)) * (
            1.0 + rng.uniform(-self.channel_gain, self.channel_gain, 3)
        )
        x = x * gain.astype(np.float32)
        if self.illumination:
            h, w = x.shape[:2]
            direction = rng.uniform(0.0, 2.0 * np.pi)
            ramp = (np.cos(direction) * np.linspace(-1, 1, w, dtype=np.float32)[None, :]
                    + np.sin(direction) * np.linspace(-1, 1, h, dtype=np.float32)[:, None])  # fmt: skip
            x = x * (1.0 + np.float32(rng.uniform(0.0, self.illumination)) * ramp)[..., None]
        if rng.random() < self.blur:
            x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 1.5)))
        if rng.random() < self.vignetting:
            h, w = x.shape[:2]
            yy, xx = np.mgrid[:h, :w].astype(np.float32)
            r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / np.float32((max(h, w) / 2) ** 2)
            x = x * (1.0 - np.float32(rng.uniform(0.1, 0.6)) * np.minimum(r2, 1.0))[..., None]
        if self.noise:
            x = x + rng.normal(0.0, rng.uniform(0.0, self.noise) / 255.0, x.shape).astype(np.float32)
        out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return self.camera(rng, out) * inside

    def camera(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """What a camera's own processing does to the pixels: fewer of them, sharpening, JPEG."""
        h, w = image.shape[:2]
        if rng.random() < self.resolution:
            f = rng.uniform(0.35, 0.9)
            small = cv2.resize(image, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
            image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < self.sharpen:
            blurred = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(1.0, 2.0)))
            image = cv2.addWeighted(image, 1.0 + (a := float(rng.uniform(0.3, 1.0))), blurred, -a, 0)
        if rng.random() < self.jpeg:
            quality = int(rng.integers(30, 91))
            _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        return image

    def spots(self, rng: np.random.Generator, image: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """Sometimes a few small yellow-white exudate-like and dark red haemorrhage-like spots inside the
        field, as diabetic retinopathy gives them: neither is a disc, nor moves one."""
        if rng.random() >= self.lesions or not inside.any():
            return image
        w = image.shape[1]
        ys, xs = np.nonzero(inside)
        out = image
        for _ in range(int(rng.integers(1, 7))):
            i = int(rng.integers(len(xs)))
            radius = max(1, round(rng.uniform(0.004, 0.02) * w))
            bright = rng.random() < 0.5
            colour = (250, 235, 150) if bright else (90, 20, 15)
            layer = out.copy()
            cv2.circle(layer, (int(xs[i]), int(ys[i])), radius, colour, -1, cv2.LINE_AA)
            alpha = float(rng.uniform(0.5, 0.9))  # a spot lets some of the retina show through
            out = cv2.addWeighted(layer, alpha, out, 1.0 - alpha, 0)
        return out * inside[..., None]  # a spot at the field's edge ends there
