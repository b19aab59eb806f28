"""The glaucoma probability of a photograph: the classifier ensemble's, joined by the vCDR's.

A large vertical cup-to-disc ratio is the classic sign of glaucomatous optic neuropathy, and the
segmenter measures it anyway. Trained from scratch on a few dozen glaucomatous photographs, the
ensemble can be the weaker witness; so a bundle may carry a logistic model of the vCDR
(P(glaucoma) = sigmoid(intercept + slope x vCDR), fitted on the training photographs' annotated
vCDRs) and a weight: the answer is ``(1 - weight) x ensemble + weight x vCDR model``, the same
averaging by which the ensemble merges its members. Without a vCDR (no disc segmented) the
ensemble answers alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VcdrRisk:
    intercept: float
    slope: float
    weight: float  # its share of the glaucoma probability; the ensemble has the rest

    def probability(self, vcdr: float) -> float:
        z = self.intercept + self.slope * vcdr
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def combine(self, ensemble: float, vcdr: float | None) -> float:
        if vcdr is None:
            return ensemble
        return (1.0 - self.weight) * ensemble + self.weight * self.probability(vcdr)

    def to_dict(self) -> dict:
        return {"intercept": self.intercept, "slope": self.slope, "weight": self.weight}

    @classmethod
    def from_dict(cls, d: dict) -> VcdrRisk:
        weight = float(d["weight"])
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"vCDR weight {weight} is not between 0 and 1")
        return cls(float(d["intercept"]), float(d["slope"]), weight)
