"""The screening pipeline of DESIGN.md: images in, one ``Result`` per image out, in input order.

Per batch: decode + field of view + full view (thread pool) -> locator -> LoG peaks -> disc
crop from the original-resolution image -> segmenter and classifier -> ellipses, vCDR,
probability, all in original pixels. Decoding of the next batch runs in the pool while the
engines work on this one. An image that cannot be read or processed gets ``ok=False`` and a
one-line reason; the rest of the batch goes on.

    with Pipeline.load("bundle/") as screen:
        for result in screen(["a.jpg", "b.png"]):
            print(result.to_dict())
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import result as flags
from .bundle import Bundle, load_bundle
from .engines import Engine, open_engine
from .field_of_view import FieldOfView, detect_field_of_view
from .geometry import Affine, square_transform, warp
from .image_io import ImageReadError, read_image
from .normalize import Normalization
from .postprocess import disc_cup_ellipses, landmarks_from_map
from .result import Result

MIN_SIDE = 64  # smaller images hold no usable disc
DISC_DIAMETER_OF_FOV = 0.15  # fallback disc size: about 1.8 mm of a 45-degree camera's 12 mm field
DISC_DIAMETER_RANGE = (0.07, 0.30)  # plausible disc sizes, as fractions of the FOV diameter


@dataclass(frozen=True)
class Settings:
    """The bundle's preprocessing and post-processing constants, read once."""

    locator_size: int
    locator_norm: Normalization
    segmenter_size: int
    segmenter_norm: Normalization
    classifier_size: int
    classifier_norm: Normalization
    crop_factor: float
    log_sigma: float
    peak_min_distance: float
    peak_threshold: float
    fovea_distance_dd: float
    mask_threshold: float
    decision_threshold: float
    members: tuple[str, ...]

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> Settings:
        loc, seg, cls_ = (bundle.graph(g) for g in ("locator", "segmenter", "classifier"))
        ensemble = bundle.manifest.ensemble
        return cls(
            locator_size=int(loc.preprocess["size"]),
            locator_norm=Normalization.from_dict(loc.preprocess["normalization"]),
            segmenter_size=int(seg.preprocess["size"]),
            segmenter_norm=Normalization.from_dict(seg.preprocess["normalization"]),
            classifier_size=int(cls_.preprocess["size"]),
            classifier_norm=Normalization.from_dict(cls_.preprocess["normalization"]),
            crop_factor=float(seg.preprocess.get("crop_factor", 2.0)),
            log_sigma=float(loc.postprocess["log_sigma"]),
            peak_min_distance=float(loc.postprocess["peak_min_distance"]),
            peak_threshold=float(loc.postprocess["peak_threshold"]),
            fovea_distance_dd=float(loc.postprocess["fovea_distance_dd"]),
            mask_threshold=float(seg.postprocess.get("threshold", 0.5)),
            decision_threshold=float(ensemble.get("threshold", 0.5)),
            members=tuple(ensemble.get("members", ())),
        )


@dataclass
class _Prepared:
    """One decoded image and its full views, between the pool and the engines."""

    result: Result
    image: np.ndarray
    fov: FieldOfView
    full_affine: Affine  # original -> locator view
    locator_view: np.ndarray  # RGB uint8, for the disc/fovea brightness test
    locator_input: np.ndarray
    classifier_full: np.ndarray


class Pipeline:
    def __init__(self, bundle: Bundle, engines: dict[str, Engine], *, workers: int | None = None):
        self.bundle = bundle
        self.engines = engines
        self.settings = Settings.from_bundle(bundle)
        self._pool = ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1))

    @classmethod
    def load(
        cls,
        bundle: str | os.PathLike | Bundle,
        *,
        backend: str = "auto",
        device: str = "auto",
        precision: str = "fp32",
        threads: int | None = None,
        workers: int | None = None,
    ) -> Pipeline:
        """Open the bundle (verified) and one engine per graph on the chosen backend."""
        bundle = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
        engines: dict[str, Engine] = {}
        try:
            for graph in ("locator", "segmenter", "classifier"):
                engines[graph] = open_engine(
                    bundle, graph, backend=backend, device=device, precision=precision, threads=threads
                )
        except BaseException:
            for engine in engines.values():
                engine.close()
            raise
        return cls(bundle, engines, workers=workers)

    @property
    def description(self) -> dict[str, str]:
        return {name: engine.description for name, engine in self.engines.items()}

    def __call__(self, images: Iterable, *, batch_size: int = 8) -> list[Result]:
        return list(self.stream(images, batch_size=batch_size))

    def stream(self, images: Iterable, *, batch_size: int = 8, keep_images: bool = False) -> Iterator[Result]:
        """Results in input order, one batch at a time; the next batch decodes while this one runs.
        ``images``: paths or RGB uint8 arrays. ``keep_images`` leaves each decoded image on its result."""
        batch_size = max(1, min(batch_size, min(e.max_batch for e in self.engines.values())))
        batches = _chunks(enumerate(images), batch_size)
        pending = self._submit(next(batches, None))
        while pending is not None:
            upcoming = self._submit(next(batches, None))  # decode ahead while the engines run
            prepared = [future.result() for future in pending]
            yield from self._run_batch(prepared, keep_images)
            pending = upcoming

    def _submit(self, batch):
        if batch is None:
            return None
        return [self._pool.submit(self._prepare, index, item) for index, item in batch]

    # -- stage 1, in the pool: decode, field of view, full views --------------------------------

    def _prepare(self, index: int, item) -> _Prepared | Result:
        name = str(item) if isinstance(item, (str, os.PathLike)) else f"<array {index}>"
        try:
            t0 = time.perf_counter()
            image = read_image(item) if isinstance(item, (str, os.PathLike)) else _checked_array(item, name)
            h, w = image.shape[:2]
            if min(h, w) < MIN_SIDE:
                raise ImageReadError(name, f"{w}x{h} pixels is too small to screen (needs {MIN_SIDE} a side)")
            t1 = time.perf_counter()
            s = self.settings
            fov = detect_field_of_view(image)
            full_affine = fov.view_transform(s.locator_size)
            locator_view = warp(image, full_affine, s.locator_size)
            if s.classifier_size == s.locator_size:
                classifier_view = locator_view
            else:
                classifier_view = warp(image, fov.view_transform(s.classifier_size), s.classifier_size)
            result = Result(path=name, image_size=(w, h))
            if not fov.found:
                result.flags.append(flags.NO_FIELD_OF_VIEW)
            prepared = _Prepared(
                result, image, fov, full_affine, locator_view,
                s.locator_norm(locator_view), s.classifier_norm(classifier_view),
            )  # fmt: skip
            t2 = time.perf_counter()
            result.timings_ms.update(decode=1e3 * (t1 - t0), preprocess=1e3 * (t2 - t1))
            return prepared
        except ImageReadError as e:
            return Result.failed(name, str(e))
        except Exception as e:  # anything else is this image's problem, not the batch's
            return Result.failed(name, f"{name}: {type(e).__name__}: {e}")

    # -- stages 2 to 5, on the engines ------------------------------------------------------------

    def _run_batch(self, prepared: list, keep_images: bool) -> list[Result]:
        live = [p for p in prepared if isinstance(p, _Prepared)]
        if live:
            try:
                self._infer(live)
            except Exception as e:  # an engine failed on the whole batch: every image says so
                for p in live:
                    p.result.ok, p.result.error = False, f"{p.result.path}: inference failed: {type(e).__name__}: {e}"
        out = []
        for p in prepared:
            if isinstance(p, _Prepared):
                if keep_images:
                    p.result.image = p.image
                p.image = None  # free the decoded image as soon as the batch is done
                out.append(p.result)
            else:
                out.append(p)
        return out

    def _infer(self, live: list[_Prepared]) -> None:
        s, n = self.settings, len(live)
        t0 = time.perf_counter()
        maps = self.engines["locator"].run({"image": np.stack([p.locator_input for p in live])})["distance_map"]
        t1 = time.perf_counter()
        crops_seg, crops_cls, seg_affines = [], [], []
        for p, distance_map in zip(live, maps):
            t = time.perf_counter()
            centre, diameter = self._locate_disc(p, distance_map[0])
            side = s.crop_factor * diameter
            seg_affine = square_transform(centre, side, s.segmenter_size)
            seg_view = warp(p.image, seg_affine, s.segmenter_size)
            if s.classifier_size == s.segmenter_size:
                cls_view = seg_view
            else:
                cls_view = warp(p.image, square_transform(centre, side, s.classifier_size), s.classifier_size)
            crops_seg.append(s.segmenter_norm(seg_view))
            crops_cls.append(s.classifier_norm(cls_view))
            seg_affines.append(seg_affine)
            p.result.timings_ms["crop"] = 1e3 * (time.perf_counter() - t)
        t2 = time.perf_counter()
        planes = self.engines["segmenter"].run({"image": np.stack(crops_seg)})["disc_cup"]
        t3 = time.perf_counter()
        classified = self.engines["classifier"].run(
            {"full": np.stack([p.classifier_full for p in live]), "crop": np.stack(crops_cls)}
        )
        t4 = time.perf_counter()
        for i, p in enumerate(live):
            t = time.perf_counter()
            try:
                probability, members = classified["probability"][i], classified["members"][i]
                self._finish(p.result, planes[i], seg_affines[i], probability, members)
            except Exception as e:
                p.result.ok, p.result.error = False, f"{p.result.path}: post-processing failed: {type(e).__name__}: {e}"
            p.result.timings_ms.update(
                locate=1e3 * (t1 - t0) / n, segment=1e3 * (t3 - t2) / n, classify=1e3 * (t4 - t3) / n,
                postprocess=1e3 * (time.perf_counter() - t),
            )  # fmt: skip

    def _locate_disc(self, p: _Prepared, distance_map: np.ndarray) -> tuple[np.ndarray, float]:
        """Disc centre (original pixels) and diameter for the crop; sets disc_center/fovea and flags."""
        s, r = self.settings, p.result
        side = distance_map.shape[-1]
        landmarks = landmarks_from_map(
            distance_map, p.locator_view, p.full_affine,
            sigma=s.log_sigma, min_distance=s.peak_min_distance, threshold=s.peak_threshold,
        )  # fmt: skip
        fov_diameter = 2.0 * p.fov.radius
        if landmarks is None:
            # Fallback: the brightest blob of the green channel inside the view, a typical disc size.
            r.flags.append(flags.LANDMARKS_NOT_FOUND)
            disc = p.full_affine.inverse()(_brightest_spot(p.locator_view, s.log_sigma * side))
            r.disc_center = (float(disc[0]), float(disc[1]))
            return disc, DISC_DIAMETER_OF_FOV * fov_diameter
        disc, fovea = landmarks
        r.disc_center, r.fovea = (float(disc[0]), float(disc[1])), (float(fovea[0]), float(fovea[1]))
        diameter = float(np.hypot(*(disc - fovea))) / s.fovea_distance_dd
        low, high = (f * fov_diameter for f in DISC_DIAMETER_RANGE)
        if not low <= diameter <= high:
            r.flags.append(flags.DISC_SIZE_CLAMPED)
            diameter = float(np.clip(diameter, low, high))
        return disc, diameter

    def _finish(self, r: Result, planes: np.ndarray, seg_affine: Affine, probability, members) -> None:
        s = self.settings
        r.disc, r.cup = disc_cup_ellipses(planes, seg_affine, s.mask_threshold)
        if r.disc is None:
            r.flags.append(flags.DISC_NOT_SEGMENTED)
        elif r.cup is None:
            r.flags.append(flags.CUP_NOT_SEGMENTED)
            r.vcdr = 0.0
        else:
            r.vcdr = min(r.cup.vertical_diameter / r.disc.vertical_diameter, 1.0)
        r.glaucoma_probability = float(probability)
        r.glaucoma = bool(r.glaucoma_probability >= s.decision_threshold)
        r.members = {name: float(v) for name, v in zip(s.members, members)}
        r.ok = True

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for engine in self.engines.values():
            engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _checked_array(image, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageReadError(name, f"arrays must be (H, W, 3) RGB uint8, got {image.shape} {image.dtype}")
    return image


def _brightest_spot(view: np.ndarray, sigma: float) -> tuple[float, float]:
    green = cv2.GaussianBlur(view[..., 1].astype(np.float32), (0, 0), max(sigma, 1.0))
    y, x = np.unravel_index(int(np.argmax(green)), green.shape)
    return float(x), float(y)
