"""Refitting a bundle's ensemble numbers to one site's photographs: the vCDR's weight, the decision
threshold and the uncertainty threshold, from the screening results of a labelled sample.

A bundle trained on one camera ranks another camera's photographs less well and at other
probabilities (DESIGN: the ensemble falls towards chance across cameras), so a site with a few dozen
labelled photographs of its own may move the numbers that decide an answer; the graphs stay as they
are. Only what the runtime computes from the graphs' outputs is refitted, and it is recomputed
exactly as the runtime computes it (``VcdrRisk.combine``):

- **vCDR weight** (``ensemble.vcdr.weight``): the weight on a grid 0, 0.05, ..., 1 at which the
  glaucoma probability ranks the sample best (AUC); ties go to the weight nearest the bundle's, so a
  flat sample (say, no disc segmented anywhere) leaves it where it was. AUC, not log-likelihood: the
  threshold is set next, from the same sample, so only the ranking matters, and the AUC asks no
  calibrated probabilities of a sum of two models. Photographs without a vCDR keep the ensemble's
  probability, as at runtime; a bundle without a vCDR model has no weight to refit.
- **threshold** (``ensemble.threshold``): the lowest at which at least ``specificity`` of the
  sample's normal photographs fall below it (the runtime calls glaucoma from the threshold up), set
  midway to the next score above, so the sample's sensitivity is the most that specificity allows.
  Default 85 %: the operating point REFUGE reports (sensitivity at 85 % specificity), which
  ``fundusrt evaluate`` shows too.
- **uncertainty** (``ensemble.uncertainty``): the members' spread that at most ``uncertain_share``
  of the sample reaches (the same rule, on all photographs): the share of a site's photographs
  referred for the members' disagreement, a grader's workload. Left as it was where the spread is
  zero throughout (one member) or the share is None.

The sample's numbers (AUC, sensitivity, specificity) are measured on the photographs the values were
fitted on: optimistic for the weight and the threshold; judge them on other photographs of the site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from fundusrt.runtime.bundle import Ensemble, OperatingPoint

from .metrics import auc

DEFAULT_SPECIFICITY = 0.85
DEFAULT_UNCERTAIN_SHARE = 0.10  # one photograph in ten referred for the members' disagreement
WEIGHTS = tuple(round(float(w), 2) for w in np.linspace(0.0, 1.0, 21))
MIN_PER_CLASS = 5  # fewer glaucoma or normal photographs than this: refused

METHOD = (
    "vCDR weight: the highest AUC on the sample over 0, 0.05, ..., 1 (ties: nearest the previous weight); "
    "threshold: the lowest at which the target specificity of the sample's normal photographs fall below it, "
    "midway to the next score; uncertainty: the members' spread that at most the target share of the sample "
    "reaches (kept where no members disagree)"
)


class CalibrationError(ValueError):
    """A sample that cannot calibrate a bundle; the message says why in one line."""


@dataclass(frozen=True)
class SiteSample:
    """What the runtime's answers are made of, per screened and labelled photograph."""

    labels: np.ndarray  # 1 glaucoma, 0 normal
    ensemble: np.ndarray  # the members' mean
    vcdr: np.ndarray  # NaN where no disc was segmented
    spread: np.ndarray  # the members' standard deviation

    @classmethod
    def of(cls, samples, results) -> SiteSample:
        """The screened (``ok``) and labelled ones of ``samples``, with their ``results``."""
        kept = [(s.label, r) for s, r in zip(samples, results) if r.ok and s.label is not None]
        return cls(
            np.asarray([y for y, _ in kept], np.int64),
            np.asarray([r.ensemble_probability for _, r in kept], np.float64),
            np.asarray([np.nan if r.vcdr is None else r.vcdr for _, r in kept], np.float64),
            np.asarray([r.uncertainty for _, r in kept], np.float64),
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def glaucoma(self) -> int:
        return int(self.labels.sum())

    @property
    def without_vcdr(self) -> int:
        return int(np.isnan(self.vcdr).sum())

    def check(self) -> None:
        normal = len(self) - self.glaucoma
        if min(self.glaucoma, normal) < MIN_PER_CLASS:
            raise CalibrationError(
                f"needs at least {MIN_PER_CLASS} screened photographs of each class, got {self.glaucoma} glaucoma "
                f"and {normal} normal"
            )

    def probabilities(self, ensemble: Ensemble) -> np.ndarray:
        """The glaucoma probability the runtime answers under ``ensemble``'s numbers."""
        if ensemble.vcdr is None:
            return self.ensemble.copy()
        combine = ensemble.vcdr.combine
        return np.asarray(
            [combine(float(e), None if math.isnan(v) else float(v)) for e, v in zip(self.ensemble, self.vcdr)]
        )


def lowest_cut(values: np.ndarray, below: float, among: np.ndarray | None = None) -> float:
    """The lowest threshold ``t`` with at least the share ``below`` of ``values`` under it (``< t``),
    set midway to the next of ``among`` (default: ``values``) above, or just above where none is."""
    values = np.sort(np.asarray(values, np.float64))
    among = values if among is None else np.asarray(among, np.float64)
    k = math.ceil(below * len(values) - 1e-9)  # how many must fall below
    if k <= 0:
        return float(min(values[0], among.min()))
    cut = values[k - 1]
    above = np.sort(among[among > cut])
    threshold = (cut + above[0]) / 2.0 if len(above) else cut + max(1e-6, abs(cut) * 1e-6)
    return float(threshold if threshold > cut else np.nextafter(cut, np.inf))


def threshold_at_specificity(labels: np.ndarray, probabilities: np.ndarray, specificity: float) -> float:
    """The lowest threshold at which ``specificity`` of the normal photographs fall below it, midway to
    the next photograph's probability above (so the sample's sensitivity is the most it allows)."""
    return lowest_cut(probabilities[np.asarray(labels) == 0], specificity, probabilities)


def best_vcdr_weight(site: SiteSample, ensemble: Ensemble) -> float | None:
    """The grid weight of the best AUC on ``site``, ties to the nearest of the bundle's (None: no vCDR model)."""
    if ensemble.vcdr is None:
        return None
    current = ensemble.vcdr.weight

    def score(weight: float) -> float:
        return auc(site.labels, site.probabilities(replace(ensemble, vcdr=replace(ensemble.vcdr, weight=weight))))

    aucs = {w: score(w) for w in sorted({*WEIGHTS, current})}
    best = max(aucs.values())
    return min((w for w, a in aucs.items() if a >= best - 1e-12), key=lambda w: (abs(w - current), w))


def uncertainty_at_share(site: SiteSample, share: float | None, current: float | None) -> float | None:
    """The spread at most ``share`` of the sample reaches; ``current`` where none can be set (no spread)."""
    if share is None or not np.any(site.spread > 0):
        return current
    cut = lowest_cut(site.spread, 1.0 - share)
    return cut if cut > 0 else current


def operating_point(site: SiteSample, ensemble: Ensemble) -> OperatingPoint:
    """``ensemble``'s numbers and how they answer ``site``."""
    p = site.probabilities(ensemble)
    called = p >= ensemble.threshold
    glaucoma, normal = site.labels == 1, site.labels == 0
    uncertain = None if ensemble.uncertainty is None else int(np.sum(site.spread >= ensemble.uncertainty))
    return OperatingPoint(
        threshold=float(ensemble.threshold),
        vcdr_weight=None if ensemble.vcdr is None else float(ensemble.vcdr.weight),
        uncertainty=ensemble.uncertainty,
        auc=auc(site.labels, p),
        sensitivity=float(called[glaucoma].mean()),
        specificity=float((~called[normal]).mean()),
        uncertain=uncertain,
    )


def calibrate_ensemble(
    ensemble: Ensemble,
    site: SiteSample,
    *,
    specificity: float = DEFAULT_SPECIFICITY,
    uncertain_share: float | None = DEFAULT_UNCERTAIN_SHARE,
) -> Ensemble:
    """``ensemble`` with its vCDR weight, threshold and uncertainty refitted on ``site``."""
    if not 0.0 < specificity <= 1.0:
        raise CalibrationError(f"specificity must lie in (0, 1], got {specificity}")
    if uncertain_share is not None and not 0.0 < uncertain_share < 1.0:
        raise CalibrationError(f"the uncertain share must lie in (0, 1), got {uncertain_share}")
    site.check()
    weight = best_vcdr_weight(site, ensemble)
    fitted = ensemble if weight is None else replace(ensemble, vcdr=replace(ensemble.vcdr, weight=weight))
    threshold = threshold_at_specificity(site.labels, site.probabilities(fitted), specificity)
    uncertainty = uncertainty_at_share(site, uncertain_share, ensemble.uncertainty)
    return replace(fitted, threshold=threshold, uncertainty=uncertainty)


def ensemble_before(ensemble: Ensemble, before: OperatingPoint) -> Ensemble:
    """``ensemble`` with the numbers a calibration recorded as ``before`` (to score it both ways)."""
    vcdr = ensemble.vcdr
    if vcdr is not None and before.vcdr_weight is not None:
        vcdr = replace(vcdr, weight=before.vcdr_weight)
    return replace(ensemble, threshold=before.threshold, vcdr=vcdr, uncertainty=before.uncertainty)
