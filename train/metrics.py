"""The REFUGE challenge metrics, as its official evaluation defines them (Orlando et al. 2020).

- optic cup Dice on ``mask == 0``, optic disc Dice on ``mask < 255`` (the disc includes the cup);
- vCDR absolute error, vertical diameter = the most mask pixels in one column,
  vCDR = cup / (disc + 1e-7); the score is the mean over images;
- AUC (scikit-learn), and sensitivity at 85 % specificity read off the ROC
  (``roc_curve``, default options) by ``scipy.interpolate.interp1d`` of sensitivity over
  specificity, as the official code does (at a vertical ROC step this takes the step's
  first point, which a geometric reading would not: the tests pin that case);
- fovea: mean Euclidean distance in pixels.

One extension: the official Dice divides by zero when both masks are empty; here that is 1.0
(perfect agreement on "no structure").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import interp1d
from sklearn.metrics import roc_auc_score, roc_curve

from fundusrt.runtime.masks import BACKGROUND, CUP, refuge_vcdr


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    total = float(prediction.sum()) + float(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * float(np.logical_and(prediction, truth).sum()) / total


def cup_dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """OC Dice of two REFUGE-coded masks."""
    return dice(np.asarray(prediction) == CUP, np.asarray(truth) == CUP)


def disc_dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """OD Dice of two REFUGE-coded masks."""
    return dice(np.asarray(prediction) < BACKGROUND, np.asarray(truth) < BACKGROUND)


def vcdr_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    return abs(refuge_vcdr(prediction) - refuge_vcdr(truth))


def segmentation_metrics(predictions: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> dict:
    """Means over images of OC Dice, OD Dice, vCDR absolute error and vCDR signed error (``vcdr_bias``:
    predicted minus true, so a cup drawn too short vertically shows as a negative bias)."""
    if len(predictions) != len(truths) or not predictions:
        raise ValueError(f"need as many predictions as truths, and some: {len(predictions)} vs {len(truths)}")
    pairs = list(zip(predictions, truths))
    return {
        "oc_dice": float(np.mean([cup_dice(p, t) for p, t in pairs])),
        "od_dice": float(np.mean([disc_dice(p, t) for p, t in pairs])),
        "vcdr_mae": float(np.mean([vcdr_error(p, t) for p, t in pairs])),
        "vcdr_bias": float(np.mean([refuge_vcdr(p) - refuge_vcdr(t) for p, t in pairs])),
    }


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    return float(roc_auc_score(labels, scores))


def sensitivity_at_specificity(labels: Sequence[int], scores: Sequence[float], specificity: float = 0.85) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(interp1d(1.0 - fpr, tpr)(specificity))


def classification_metrics(labels: Sequence[int], scores: Sequence[float]) -> dict:
    return {"auc": auc(labels, scores), "sensitivity_at_85_specificity": sensitivity_at_specificity(labels, scores)}


def fovea_distance(predictions, truths) -> float:
    """Mean Euclidean distance, in pixels, between predicted and true (x, y) points."""
    p, t = np.asarray(predictions, np.float64).reshape(-1, 2), np.asarray(truths, np.float64).reshape(-1, 2)
    if p.shape != t.shape or not len(p):
        raise ValueError(f"need as many predicted points as true ones, and some: {len(p)} vs {len(t)}")
    return float(np.mean(np.sqrt(((p - t) ** 2).sum(axis=1))))
