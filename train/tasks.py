"""The three training tasks, as classes: what training, evaluation, export and the parity check
need to know of each kind of model.

A task trains one or more *members* (model + input view) into one run folder and becomes one
graph of the bundle: ``ClassifyTask`` the five-member ResNet50 ensemble (the classifier),
``SegmentTask`` one CE-Net (the segmenter), ``LocateTask`` one UNet (the locator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from fundusrt.runtime.bundle import Preprocess
from fundusrt.runtime.constants import CROP_FACTOR, GAMMA
from fundusrt.runtime.ellipse import largest_component
from fundusrt.runtime.geometry import Affine
from fundusrt.runtime.masks import refuge_vcdr, vertical_cdr
from fundusrt.runtime.normalize import Normalization
from fundusrt.runtime.postprocess import LandmarkPostprocess, SegmentationPostprocess

from . import losses
from .config import TrainConfig
from .data import ClassificationDataset, LocatorDataset, SegmentationDataset
from .metrics import classification_metrics, fovea_distance, segmentation_metrics


@dataclass(frozen=True)
class Member:
    name: str
    model: str  # a registered builder
    view: str  # "full" (the field of view) or "crop" (the disc crop)


@dataclass(frozen=True)
class Task:
    """One kind of model, from training data to its bundle graph and the check of its exports."""

    name: ClassVar[str]  # the word on the command line: fundusrt train NAME
    graph: ClassVar[str]  # the bundle graph it becomes
    graph_inputs: ClassVar[dict[str, str]]  # graph input -> the view it takes
    graph_outputs: ClassVar[tuple[str, ...]]
    keeps_view: ClassVar[bool] = False  # whether evaluation reads the RGB view beside each prediction
    ensemble: ClassVar[bool] = False  # whether the members merge into one answer (and one graph)

    members: tuple[Member, ...]
    normalization: Normalization = field(default_factory=Normalization)

    @property
    def takes_crop(self) -> bool:
        return "crop" in self.graph_inputs.values()

    def preprocess(self, size: int) -> Preprocess:
        """What the runtime must do to feed this task's graph: saved in checkpoints, then in the bundle."""
        return Preprocess(size, self.normalization, CROP_FACTOR if self.takes_crop else None)

    def dataset(self, samples, *, view: str, size: int, augment=None, seed: int = 0):
        raise NotImplementedError

    def loss(self, output: torch.Tensor, batch: dict, config: TrainConfig) -> torch.Tensor:
        raise NotImplementedError

    def model_kwargs(self, config: TrainConfig) -> dict:
        return {"weights": config.weights} if config.weights else {}

    def evaluate(self, predictions: list[dict], dataset) -> dict:
        """Validation metrics from ``loop.predict``'s rows; ``score`` is what the best checkpoint maximises."""
        raise NotImplementedError

    def parity(self, reference: list[np.ndarray], candidate: list[np.ndarray], dataset, rows, tolerance) -> dict:
        """An exported graph's outputs against PyTorch's on the same inputs: raw differences, the task
        metrics of both, and ``ok`` where the differences are within ``tolerance`` (``export.check``)."""
        raise NotImplementedError

    def _metrics_of(self, outputs, rows, dataset) -> dict:
        return self.evaluate([{**row, "output": output} for output, row in zip(outputs, rows)], dataset)


# ---------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class ClassifyTask(Task):
    name = "classify"
    graph = "classifier"
    graph_inputs = {"full": "full", "crop": "crop"}
    graph_outputs = ("probability", "members")  # and "heatmaps" where a member has a CAM (export.graphs)
    ensemble = True

    def dataset(self, samples, *, view, size, augment=None, seed=0):
        return ClassificationDataset(
            samples, view=view, size=size, normalization=self.normalization, augment=augment, seed=seed
        )

    def loss(self, output, batch, config):
        return losses.classification_loss(output, batch["label"])

    def evaluate(self, predictions, dataset):
        labels = [dataset.samples[p["index"]].label for p in predictions]
        scores = [float(p["output"]) for p in predictions]
        metrics = {"accuracy": float(np.mean([(s > 0.5) == bool(y) for s, y in zip(scores, labels)]))}
        if len(set(labels)) == 2:
            metrics.update(classification_metrics(labels, scores))
        metrics["score"] = metrics.get("auc", metrics["accuracy"])
        return metrics

    def parity(self, reference, candidate, dataset, rows, tolerance):
        """The answer (the ensemble's probability) and the members' spread (what ``uncertain`` reads) are
        held to the precision's probability tolerance. A member's own probability is no answer: where it
        alone moves beyond the tolerance, the row says it was judged by the quantities the record's
        decisions rest on (``judged_by``)."""
        row = {
            "probability_max_diff": float(np.abs(reference[0] - candidate[0]).max()),
            "member_max_diff": float(np.abs(reference[1] - candidate[1]).max()),
            "spread_max_diff": float(np.abs(reference[1].std(axis=1) - candidate[1].std(axis=1)).max()),
        }
        row["ok"] = max(row["probability_max_diff"], row["spread_max_diff"]) <= tolerance["probability"]
        if row["member_max_diff"] > tolerance["probability"]:
            row["judged_by"] = "members by their spread (uncertainty) and mean (the answer)"
        if len(reference) > 2:  # class activation maps: the difference as a share of the maps' range
            span = float(reference[2].max() - reference[2].min()) or 1.0
            row["heatmap_max_diff"] = float(np.abs(reference[2] - candidate[2]).max()) / span
            row["ok"] = row["ok"] and row["heatmap_max_diff"] <= tolerance["heatmap"]
        for name, output in (("torch", reference[0]), ("onnx", candidate[0])):
            row[f"auc_{name}"] = self._metrics_of(output, rows, dataset).get("auc")
        return row


# ---------------------------------------------------------------------------- segmentation


@dataclass(frozen=True)
class SegmentTask(Task):
    name = "segment"
    graph = "segmenter"
    graph_inputs = {"image": "crop"}
    graph_outputs = ("disc_cup",)

    def dataset(self, samples, *, view="crop", size, augment=None, seed=0):
        return SegmentationDataset(samples, size=size, normalization=self.normalization, augment=augment, seed=seed)

    def loss(self, output, batch, config):
        return losses.segmentation_loss(output, batch["target"], config.bce)

    def evaluate(self, predictions, dataset):
        """REFUGE's metrics of the masks the runtime makes: the fitted ellipses in original pixels."""
        reading = SegmentationPostprocess.default()
        masks, truths = [], []
        for p in predictions:
            truth = dataset.samples[p["index"]].load_mask()
            masks.append(reading(p["output"], Affine(p["affine"])).refuge_mask(truth.shape))
            truths.append(truth)
        metrics = segmentation_metrics(masks, truths)
        # the same vCDR read off the segmenter's own regions before the ellipse fit: what the fit adds
        unfitted = [_region_vcdr(p["output"], reading.threshold) for p in predictions]
        metrics["vcdr_bias_unfitted"] = float(np.mean([u - refuge_vcdr(t) for u, t in zip(unfitted, truths)]))
        metrics["score"] = 0.5 * (metrics["od_dice"] + metrics["oc_dice"]) - metrics["vcdr_mae"]
        return metrics

    def parity(self, reference, candidate, dataset, rows, tolerance):
        threshold = SegmentationPostprocess.default().threshold
        row = {
            "mask_agreement": float(np.mean((reference[0] > threshold) == (candidate[0] > threshold))),
            "probability_max_diff": float(np.abs(reference[0] - candidate[0]).max()),
        }
        row["ok"] = row["mask_agreement"] >= tolerance["mask_agreement"]
        for name, output in (("torch", reference[0]), ("onnx", candidate[0])):
            metrics = self._metrics_of(output, rows, dataset)
            for key in ("od_dice", "oc_dice", "vcdr_mae"):
                row[f"{key}_{name}"] = metrics[key]
        return row


def _region_vcdr(probabilities: np.ndarray, threshold: float) -> float:
    """The vCDR of the segmenter's regions as they are (the largest disc component, the cup's inside it),
    on the crop's grid (a crop is scaled, never rotated, so the ratio is the original's)."""
    disc = largest_component(np.asarray(probabilities[0]) > threshold)
    return vertical_cdr(disc, largest_component((np.asarray(probabilities[1]) > threshold) & disc))


# ---------------------------------------------------------------------------- location


@dataclass(frozen=True)
class LocateTask(Task):
    name = "locate"
    graph = "locator"
    graph_inputs = {"image": "full"}
    graph_outputs = ("distance_map",)
    keeps_view = True  # the disc/fovea choice reads the photograph

    def dataset(self, samples, *, view="full", size, augment=None, seed=0):
        return LocatorDataset(
            samples, gamma=GAMMA, size=size, normalization=self.normalization, augment=augment, seed=seed
        )

    def loss(self, output, batch, config):
        return losses.bi_distance_loss(output, batch["target"])

    def model_kwargs(self, config):
        return {"base": config.unet_base}

    def evaluate(self, predictions, dataset):
        """Fovea and disc errors of the deployed post-processing (LoG peaks, the disc/fovea choice on the
        photograph's own view); a landmark not found counts as an error of a whole image width."""
        reading = LandmarkPostprocess.default()
        fovea_errors, disc_errors, relative, found = [], [], [], 0
        for p in predictions:
            sample = dataset.samples[p["index"]]
            with Image.open(sample.image) as header:
                width = header.size[0] if sample.crop is None else sample.crop[2]
            located = reading(p["output"][0], p["view"], Affine(p["affine"]))
            disc, fovea = located if located is not None else (None, None)
            truth_disc = dataset.anatomy_of(p["index"]).disc_center
            disc_errors.append(float(width) if disc is None else fovea_distance([disc], [truth_disc]))
            fovea_errors.append(float(width) if fovea is None else fovea_distance([fovea], [sample.fovea]))
            found += fovea is not None
            relative.append(fovea_errors[-1] / width)
        metrics = {
            "fovea_distance_px": float(np.mean(fovea_errors)),
            "fovea_error_of_width": float(np.mean(relative)),
            "fovea_median_of_width": float(np.median(relative)),
            "fovea_within_5pct": float(np.mean(np.asarray(relative) <= 0.05)),
            "disc_distance_px": float(np.mean(disc_errors)),
            "found": found / max(len(predictions), 1),
        }
        metrics["score"] = -metrics["fovea_error_of_width"]
        return metrics

    def parity(self, reference, candidate, dataset, rows, tolerance):
        """Maps and peaks against their tolerances. Where the map is within its own tolerance but the peaks
        are not, the peak figure is ill-posed: a flat top (a barely trained locator's, or a real
        photograph's wide bump) lets the sub-pixel refinement turn the last bits of the map into a
        shift, so the row is judged by the task metric instead, the mean fovea distance (``judged_by``)."""
        row = {"map_max_diff": float(np.abs(reference[0] - candidate[0]).max())}
        distances = [_peak_distance(a[0], b[0], r["view"]) for a, b, r in zip(reference[0], candidate[0], rows)]
        row["peak_max_px"] = float(np.max(distances))
        for name, output in (("torch", reference[0]), ("onnx", candidate[0])):
            row[f"fovea_px_{name}"] = self._metrics_of(output, rows, dataset)["fovea_distance_px"]
        map_ok = tolerance["map"] is None or row["map_max_diff"] <= tolerance["map"]
        row["ok"] = map_ok and row["peak_max_px"] <= tolerance["peak_px"]
        if map_ok and not row["ok"] and np.isfinite(row["peak_max_px"]):
            row["judged_by"] = "fovea distance: peaks ill-posed on a flat map"
            row["ok"] = abs(row["fovea_px_onnx"] - row["fovea_px_torch"]) <= FOVEA_PX_AGREEMENT
        return row


# Where peaks are ill-posed, the mean fovea distance (original pixels) must agree to the precision REFUGE
# reports it with.
FOVEA_PX_AGREEMENT = 0.05


def _peak_distance(a: np.ndarray, b: np.ndarray, view: np.ndarray) -> float:
    """Largest distance between the landmarks found on two maps, on the map's grid (inf where one map
    finds a landmark the other does not)."""
    reading = LandmarkPostprocess.default()
    found = [reading(m, view, Affine.identity()) for m in (a, b)]
    if any(f is None for f in found):
        return float("inf")
    distances = []
    for p, q in zip(*found):
        if (p is None) != (q is None):
            return float("inf")
        if p is not None:
            distances.append(float(np.hypot(*(p - q))))
    return max(distances)


# Zhao et al.'s ensemble (their Figure 1) as read here: ResNet50 with GAP on the full image for
# global features, and on the disc crop the four heads that fuse ever more scales or compress channels.
ENSEMBLE = (
    Member("full_gap", "resnet50_gap", "full"),
    Member("crop_gap", "resnet50_gap", "crop"),
    Member("crop_2gap", "resnet50_2gap", "crop"),
    Member("crop_3gap", "resnet50_3gap", "crop"),
    Member("crop_cc", "resnet50_cc", "crop"),
)

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        ClassifyTask(ENSEMBLE),
        SegmentTask((Member("cenet", "cenet_resnet34", "crop"),)),
        # Meyer et al. feed their UNet per-image z-scored photographs.
        LocateTask((Member("unet", "unet_locator", "full"),), Normalization(per_image=True)),
    )
}
BY_GRAPH: dict[str, Task] = {task.graph: task for task in TASKS.values()}
