"""The screening pipeline: images in, one ``Result`` per image out, in input order.

Per batch: decode + field of view + full view (thread pool) -> locator -> LoG peaks -> disc
crop from the original-resolution image -> segmenter and classifier -> ellipses, vCDR,
probability, all in original pixels -> the photograph's quality and the members' agreement
(``refer``), and on request the classifier's evidence maps drawn over the photograph. Decoding of
the next batch runs in the pool while the engines work on this one. An image that cannot be read
or processed gets ``ok=False`` and a one-line reason; the rest of the batch goes on.

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

from . import heatmap
from . import result as flags
from .bundle import Bundle, load_bundle
from .constants import GRAPHS
from .ellipse import Ellipse
from .engines import Engine, open_engine
from .field_of_view import FieldOfView, detect_field_of_view
from .geometry import Affine, disc_crop_transform, square_transform
from .image_io import ImageReadError, read_image
from .postprocess import DiscCup
from .quality import assess_quality
from .result import Result

MIN_SIDE = 64  # smaller images hold no usable disc
DISC_DIAMETER_OF_FOV = 0.15  # first guess of the disc's size: about 1.8 mm of a 45-degree camera's 12 mm field
DISC_DIAMETER_RANGE = (0.07, 0.30)  # plausible disc sizes, as fractions of the FOV diameter
RECROP_SIZE = 0.15  # segment again when the disc's measured size differs by more than this (log ratio) ...
RECROP_SHIFT = 0.15  # ... or its centre lies further than this many disc diameters from the crop's
RECROPS = 2  # at most this many crops after the first
LANDMARK_MARGIN = 0.02  # a fovea this close outside the frame (of its width) is clamped, further is dropped
DISC_PICTURE = 384  # side of the disc crop the evidence map is drawn over


@dataclass
class _Crop:
    """One disc crop on its way through the segmenter: its map from original pixels, the model input,
    then the ellipses segmented on it."""

    guess: tuple[np.ndarray, float]  # the disc centre and diameter it was cut for
    affine: Affine
    input: np.ndarray
    found: DiscCup | None = None


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
        m = bundle.manifest  # the bundle's preprocessing and post-processing, as export wrote them
        self.locator_in, self.segmenter_in, self.classifier_in = (m.graphs[g].preprocess for g in GRAPHS)
        self.landmarks, self.segmentation, self.ensemble = m.landmarks, m.segmentation, m.ensemble
        # the channels of the classifier's ``heatmaps`` output that cover each view
        views = list(m.ensemble.heatmaps.values())
        self.heatmap_channels = {v: [i for i, seen in enumerate(views) if seen == v] for v in ("full", "crop")}
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
        cuda_graph: bool = False,
    ) -> Pipeline:
        """Open the bundle (verified) and one engine per graph on the chosen backend (``cuda_graph``:
        TensorRT replays each batch size as a CUDA graph)."""
        bundle = bundle if isinstance(bundle, Bundle) else load_bundle(Path(bundle))
        engines: dict[str, Engine] = {}
        try:
            for graph in GRAPHS:
                engines[graph] = open_engine(
                    bundle, graph, backend=backend, device=device, precision=precision, threads=threads,
                    cuda_graph=cuda_graph,
                )  # fmt: skip
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

    def stream(
        self, images: Iterable, *, batch_size: int = 8, keep_images: bool = False, heatmaps: bool = False
    ) -> Iterator[Result]:
        """Results in input order, one batch at a time; the next batch decodes while this one runs.
        ``images``: paths or RGB uint8 arrays. ``keep_images`` leaves each decoded image on its result;
        ``heatmaps`` draws the evidence maps onto ``result.heatmaps`` (where the bundle has them)."""
        batch_size = max(1, min(batch_size, min(e.max_batch for e in self.engines.values())))
        batches = _chunks(enumerate(images), batch_size)
        pending = self._submit(next(batches, None))
        while pending is not None:
            upcoming = self._submit(next(batches, None))  # decode ahead while the engines run
            prepared = [future.result() for future in pending]
            yield from self._run_batch(prepared, keep_images, heatmaps)
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
            loc, cls_ = self.locator_in, self.classifier_in
            fov = detect_field_of_view(image)
            full_affine = fov.view_transform(loc.size)
            locator_view = fov.cut(image, full_affine, loc.size)
            if cls_.size == loc.size:
                classifier_view = locator_view
            else:
                classifier_view = fov.cut(image, fov.view_transform(cls_.size), cls_.size)
            result = Result(path=name, image_size=(w, h))
            if not fov.found:
                result.flags.append(flags.NO_FIELD_OF_VIEW)
            prepared = _Prepared(
                result, image, fov, full_affine, locator_view,
                loc.normalization(locator_view), cls_.normalization(classifier_view),
            )  # fmt: skip
            t2 = time.perf_counter()
            result.timings_ms.update(decode=1e3 * (t1 - t0), preprocess=1e3 * (t2 - t1))
            return prepared
        except ImageReadError as e:
            return Result.failed(name, str(e))
        except Exception as e:  # anything else is this image's problem, not the batch's
            return Result.failed(name, f"{name}: {type(e).__name__}: {e}")

    # -- stages 2 to 5, on the engines ------------------------------------------------------------

    def _run_batch(self, prepared: list, keep_images: bool, heatmaps: bool) -> list[Result]:
        live = [p for p in prepared if isinstance(p, _Prepared)]
        if live:
            try:
                self._infer(live, heatmaps)
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

    def _infer(self, live: list[_Prepared], heatmaps: bool = False) -> None:
        n = len(live)
        t0 = time.perf_counter()
        maps = self.engines["locator"].run({"image": np.stack([p.locator_input for p in live])})["distance_map"]
        t1 = time.perf_counter()
        guesses = []
        for p, distance_map in zip(live, maps):
            t = time.perf_counter()
            guesses.append(self._locate_disc(p, distance_map[0]))
            p.result.timings_ms["crop"] = 1e3 * (time.perf_counter() - t)
        t2 = time.perf_counter()
        crops, found = self._segment(live, guesses)
        # The disc's size and place now come from the photograph itself: where they differ from the
        # crop's, segment again on the crop they call for (twice at most: a guess far off converges
        # in two steps), so the final crop is 2 measured disc diameters around the measured centre.
        for _ in range(RECROPS):
            again = [i for i, (crop, disc) in enumerate(zip(crops, found)) if _needs_recrop(crop.guess, disc)]
            if not again:
                break
            measured = [
                (np.asarray(found[i].center), _plausible(found[i].vertical_diameter, live[i].fov)) for i in again
            ]
            retry_crops, retry_found = self._segment([live[i] for i in again], measured)
            for i, crop, disc in zip(again, retry_crops, retry_found):
                if disc is not None:
                    crops[i], found[i] = crop, disc
        t3 = time.perf_counter()
        size = self.classifier_in.size  # the classifier sees the final disc crop at its own size
        classifier_crops = [
            self.classifier_in.normalization(self._cut(p, _resized(crop.affine, self.segmenter_in.size, size), size))
            for p, crop in zip(live, crops)
        ]
        classified = self.engines["classifier"].run(
            {"full": np.stack([p.classifier_full for p in live]), "crop": np.stack(classifier_crops)}
        )
        t4 = time.perf_counter()
        for i, p in enumerate(live):
            t = time.perf_counter()
            try:
                probability, members = classified["probability"][i], classified["members"][i]
                self._finish(p, crops[i], probability, members)
                self._grade(p)
                if heatmaps and "heatmaps" in classified:
                    self._draw_evidence(p, crops[i], classified["heatmaps"][i])
            except Exception as e:
                p.result.ok, p.result.error = False, f"{p.result.path}: post-processing failed: {type(e).__name__}: {e}"
            p.result.timings_ms.update(
                locate=1e3 * (t1 - t0) / n, segment=1e3 * (t3 - t2) / n, classify=1e3 * (t4 - t3) / n,
                postprocess=1e3 * (time.perf_counter() - t),
            )  # fmt: skip

    def _cut(self, p: _Prepared, affine: Affine, size: int) -> np.ndarray:
        return p.fov.cut(p.image, affine, size)

    def _segment(self, live: list[_Prepared], discs: list) -> tuple[list[_Crop], list[Ellipse | None]]:
        """Disc crops at (centre, diameter) for each image, the segmenter on them, and each crop's disc
        ellipse (in original pixels; None where no disc was segmented)."""
        seg = self.segmenter_in
        crops = []
        for p, (centre, diameter) in zip(live, discs):
            affine = disc_crop_transform(centre, diameter, seg.size, factor=seg.crop_factor)
            crops.append(_Crop((centre, diameter), affine, seg.normalization(self._cut(p, affine, seg.size))))
        planes = self.engines["segmenter"].run({"image": np.stack([c.input for c in crops])})["disc_cup"]
        for crop, plane in zip(crops, planes):
            crop.found = self.segmentation(plane, crop.affine)
        return crops, [c.found.disc for c in crops]

    def _locate_disc(self, p: _Prepared, distance_map: np.ndarray) -> tuple[np.ndarray, float]:
        """A first guess of the disc centre (original pixels) and diameter for the first crop; sets the
        record's fovea and flags. The segmenter then measures the disc itself (``_infer``)."""
        r = p.result
        side = distance_map.shape[-1]
        landmarks = self.landmarks(distance_map, p.locator_view, p.full_affine)
        typical = DISC_DIAMETER_OF_FOV * 2.0 * p.fov.radius
        if landmarks is None:
            # Fallback: the brightest blob of the green channel inside the view, a typical disc size.
            r.flags.append(flags.LANDMARKS_NOT_FOUND)
            disc = p.full_affine.inverse()(_brightest_spot(p.locator_view, self.landmarks.log_sigma * side))
            return disc, typical
        disc, fovea = landmarks
        if fovea is None:
            r.flags.append(flags.FOVEA_NOT_FOUND)
            return disc, typical
        r.fovea = (float(fovea[0]), float(fovea[1]))
        return disc, _plausible(float(np.hypot(*(disc - fovea))) / self.landmarks.fovea_distance_dd, p.fov)

    def _finish(self, p: _Prepared, crop: _Crop, probability, members) -> None:
        r, ensemble = p.result, self.ensemble
        r.disc, r.cup = crop.found.disc, crop.found.cup
        w, h = r.image_size
        if r.disc is not None and not _inside(r.disc.center, w, h):
            r.disc, r.cup = None, None  # a disc whose centre lies outside the photograph is not this one
            r.flags.append(flags.DISC_OUTSIDE_IMAGE)
        if r.cup is not None and not _inside(r.cup.center, w, h):
            r.cup = None
        implausible = r.disc is not None and p.fov.circular and _plausible(max(r.disc.axes), p.fov) != max(r.disc.axes)
        if implausible:
            # never reported as a measurement: a "disc" a third of the field wide is a lesion or glare (a
            # frame with no field circle, e.g. a crop around the disc, says nothing of the disc's size)
            r.disc, r.cup = None, None
        if r.disc is None:
            r.flags.append(flags.DISC_SIZE_IMPLAUSIBLE if implausible else flags.DISC_NOT_SEGMENTED)
            centre = crop.affine.inverse()([(self.segmenter_in.size - 1) / 2.0] * 2)  # where the disc was looked for
        elif r.cup is None:
            centre = r.disc.center
            r.flags.append(flags.CUP_NOT_SEGMENTED)
            r.vcdr = 0.0
        else:
            centre = r.disc.center
            r.vcdr = min(r.cup.vertical_diameter / r.disc.vertical_diameter, 1.0)
        r.disc_center = _clamped(centre, w, h, r.flags)
        if r.fovea is not None:
            if _inside(r.fovea, w, h, margin=LANDMARK_MARGIN * w):
                r.fovea = _clamped(r.fovea, w, h, r.flags)
            else:
                r.fovea = None
                r.flags.append(flags.FOVEA_OUTSIDE_IMAGE)
        r.ensemble_probability = float(probability)
        r.glaucoma_probability = r.ensemble_probability
        if ensemble.vcdr is not None and r.vcdr is not None:
            r.vcdr_probability = ensemble.vcdr.probability(r.vcdr)
            r.glaucoma_probability = ensemble.vcdr.combine(r.ensemble_probability, r.vcdr)
        r.glaucoma = bool(r.glaucoma_probability >= ensemble.threshold)
        r.members = {name: float(v) for name, v in zip(ensemble.members, members)}
        r.uncertainty = float(np.std(np.asarray(members, np.float64)))
        if ensemble.uncertainty is not None:
            r.uncertain = r.uncertainty >= ensemble.uncertainty
        r.ok = True

    def _grade(self, p: _Prepared) -> None:
        """The photograph's quality (at the disc the segmenter found), and whether a grader should see it."""
        r = p.result
        r.quality = assess_quality(p.image, p.fov, r.disc)
        if not r.quality.gradable:
            r.flags.append(flags.UNGRADABLE)  # screened all the same: the answers stay, flagged
        implausible = flags.DISC_SIZE_IMPLAUSIBLE in r.flags
        r.refer = r.glaucoma or bool(r.uncertain) or not r.quality.gradable or implausible

    def _draw_evidence(self, p: _Prepared, crop: _Crop, maps: np.ndarray) -> None:
        """The class activation maps of each view drawn over what that view showed the classifier: the
        full view over the whole photograph, the crop's over the final disc crop."""
        full, disc = (maps[self.heatmap_channels[view]] for view in ("full", "crop"))
        size = self.classifier_in.size
        if len(full):
            p.result.heatmaps["photograph"] = heatmap.over_photograph(p.image, full, p.fov, size)
        if len(disc):
            picture = self._cut(p, _resized(crop.affine, self.segmenter_in.size, DISC_PICTURE), DISC_PICTURE)
            p.result.heatmaps["disc"] = heatmap.over_crop(picture, disc)

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


def _needs_recrop(guess: tuple[np.ndarray, float], disc: Ellipse | None) -> bool:
    """Whether the segmented disc calls for another crop: its size or place differs from the guess
    by more than the segmenter was trained to take in its stride."""
    if disc is None:
        return False
    centre, diameter = guess
    measured = disc.vertical_diameter
    moved = float(np.hypot(*(np.asarray(disc.center) - centre)))
    return abs(np.log(measured / diameter)) > RECROP_SIZE or moved > RECROP_SHIFT * measured


def _plausible(diameter: float, fov: FieldOfView) -> float:
    """A disc diameter held within the sizes a disc can have in this field of view."""
    low, high = (f * 2.0 * fov.radius for f in DISC_DIAMETER_RANGE)
    return float(np.clip(diameter, low, high))


def _resized(affine: Affine, size: int, new_size: int) -> Affine:
    """The same square seen at ``new_size``² instead of ``size``²."""
    if new_size == size:
        return affine
    return affine.then(square_transform(((size - 1) / 2.0, (size - 1) / 2.0), size, new_size))


def _inside(point, w: int, h: int, margin: float = 0.0) -> bool:
    return -margin <= point[0] <= w - 1 + margin and -margin <= point[1] <= h - 1 + margin


def _clamped(point, w: int, h: int, record_flags: list) -> tuple[float, float]:
    """The point moved inside the image, flagged where it had to move."""
    x, y = float(np.clip(point[0], 0, w - 1)), float(np.clip(point[1], 0, h - 1))
    if (x, y) != (float(point[0]), float(point[1])):
        record_flags.append(flags.LANDMARK_CLAMPED)
    return x, y


def _brightest_spot(view: np.ndarray, sigma: float) -> tuple[float, float]:
    green = cv2.GaussianBlur(view[..., 1].astype(np.float32), (0, 0), max(sigma, 1.0))
    y, x = np.unravel_index(int(np.argmax(green)), green.shape)
    return float(x), float(y)
