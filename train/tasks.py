"""The three training tasks: their members, datasets, losses and validation metrics.

A task trains one or more *members* (model + input view) into one run folder:
classify trains the five-member ensemble, segment one CE-Net, locate one UNet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from fundusrt.runtime.geometry import Affine
from fundusrt.runtime.normalize import Normalization
from fundusrt.runtime.postprocess import landmarks_from_map, probabilities_to_mask

from . import losses
from .data import CROP_FACTOR, ClassificationDataset, LocatorDataset, SegmentationDataset
from .metrics import classification_metrics, fovea_distance, segmentation_metrics
from .targets import GAMMA


@dataclass(frozen=True)
class Member:
    name: str
    model: str  # a registered builder
    view: str  # "full" (the field of view) or "crop" (the disc crop)


# The seed's ensemble (§1, Figure 1) as read here: ResNet50 with GAP on the full image for global
# features, and on the disc crop the four heads that fuse ever more scales or compress channels.
ENSEMBLE = (
    Member("full_gap", "resnet50_gap", "full"),
    Member("crop_gap", "resnet50_gap", "crop"),
    Member("crop_2gap", "resnet50_2gap", "crop"),
    Member("crop_3gap", "resnet50_3gap", "crop"),
    Member("crop_cc", "resnet50_cc", "crop"),
)


@dataclass(frozen=True)
class Task:
    name: str
    members: tuple[Member, ...]
    normalization: Normalization = field(default_factory=Normalization)

    def preprocess(self, member: Member, size: int) -> dict:
        """What the runtime must do to feed this member: saved in checkpoints, then in the bundle."""
        return {
            "size": size,
            "view": member.view,
            "crop_factor": CROP_FACTOR,
            "normalization": self.normalization.to_dict(),
            **({"gamma": GAMMA} if self.name == "locate" else {}),
        }

    def dataset(self, samples, member: Member, *, size: int, augment=None, seed: int = 0):
        common = dict(size=size, normalization=self.normalization, augment=augment, seed=seed)
        if self.name == "classify":
            return ClassificationDataset(samples, view=member.view, **common)
        if self.name == "segment":
            return SegmentationDataset(samples, **common)
        return LocatorDataset(samples, gamma=GAMMA, **common)

    def loss(self, output: torch.Tensor, batch: dict, *, bce_weight: float = 0.0) -> torch.Tensor:
        if self.name == "classify":
            return losses.classification_loss(output, batch["label"])
        if self.name == "segment":
            return losses.segmentation_loss(output, batch["target"], bce_weight)
        return losses.bi_distance_loss(output, batch["target"])

    def evaluate(self, predictions: list[dict], dataset) -> dict:
        """Validation metrics from ``predict``'s output; ``score`` is what the best checkpoint maximises."""
        return {"classify": _classification, "segment": _segmentation, "locate": _location}[self.name](
            predictions, dataset
        )


TASKS = {
    "classify": Task("classify", ENSEMBLE),
    "segment": Task("segment", (Member("cenet", "cenet_resnet34", "crop"),)),
    # Meyer et al. feed their UNet per-image z-scored photographs.
    "locate": Task("locate", (Member("unet", "unet_locator", "full"),), Normalization(per_image=True)),
}


# ---------------------------------------------------------------------------- validation


def _classification(predictions: list[dict], dataset) -> dict:
    labels = [dataset.samples[p["index"]].label for p in predictions]
    scores = [float(p["output"]) for p in predictions]
    metrics = {"accuracy": float(np.mean([(s > 0.5) == bool(y) for s, y in zip(scores, labels)]))}
    if len(set(labels)) == 2:
        metrics.update(classification_metrics(labels, scores))
    metrics["score"] = metrics.get("auc", metrics["accuracy"])
    return metrics


def _segmentation(predictions: list[dict], dataset) -> dict:
    masks, truths = [], []
    for p in predictions:
        truth = dataset.samples[p["index"]].load_mask()
        masks.append(probabilities_to_mask(p["output"], Affine(p["affine"]), truth.shape))
        truths.append(truth)
    metrics = segmentation_metrics(masks, truths)
    metrics["score"] = 0.5 * (metrics["od_dice"] + metrics["oc_dice"]) - metrics["vcdr_mae"]
    return metrics


def _location(predictions: list[dict], dataset) -> dict:
    """Fovea and disc errors of the deployed post-processing (LoG peaks, the disc/fovea choice on the
    photograph's own view); a landmark not found counts as an error of a whole image width."""
    fovea_errors, disc_errors, relative, found = [], [], [], 0
    for p in predictions:
        sample = dataset.samples[p["index"]]
        with Image.open(sample.image) as header:
            width = header.size[0] if sample.crop is None else sample.crop[2]
        located = landmarks_from_map(p["output"][0], p["view"], Affine(p["affine"]))
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
