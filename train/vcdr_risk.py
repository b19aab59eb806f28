"""Fitting the vCDR's logistic model of glaucoma (``fundusrt.runtime.glaucoma_risk``) on training
photographs that carry both a disc/cup annotation and a label."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from fundusrt.runtime.glaucoma_risk import VcdrRisk
from fundusrt.runtime.masks import refuge_vcdr

from .data import DECODED

DEFAULT_WEIGHT = 0.5  # the ensemble and the vCDR count equally


def fit_vcdr_risk(samples, *, weight: float = DEFAULT_WEIGHT) -> tuple[VcdrRisk, int] | None:
    """(model, photographs used), or None where fewer than two of each class have an annotation.

    Classes are weighted to balance (``class_weight="balanced"``), so probability 0.5 sits where
    glaucoma and normal are equally likely whatever the prevalence of the training set.
    """
    vcdrs, labels = [], []
    for sample in samples:
        if sample.label is None or not sample.has_mask:
            continue
        vcdrs.append(refuge_vcdr(DECODED.mask(sample)))
        labels.append(sample.label)
    labels = np.asarray(labels)
    if min((labels == 1).sum(), (labels == 0).sum()) < 2:
        return None
    model = LogisticRegression(class_weight="balanced", C=100.0).fit(np.asarray(vcdrs)[:, None], labels)
    return VcdrRisk(float(model.intercept_[0]), float(model.coef_[0, 0]), weight), len(labels)
