"""The refit of a bundle's ensemble numbers on a site's sample, on made-up screening scores."""

from dataclasses import replace

import numpy as np
import pytest

from fundusrt.runtime.bundle import Ensemble
from fundusrt.runtime.glaucoma_risk import VcdrRisk
from fundusrt.train.site_calibration import (
    WEIGHTS,
    CalibrationError,
    SiteSample,
    best_vcdr_weight,
    calibrate_ensemble,
    lowest_cut,
    operating_point,
    threshold_at_specificity,
)

ENSEMBLE = Ensemble(("a", "b"), 0.5, "mean", VcdrRisk(-6.0, 10.0, 0.5), 0.15, {})


def _site(rng, n=80, *, ensemble_signal=0.0, vcdr_signal=0.0, without_vcdr=0.0, spread=0.1) -> SiteSample:
    labels = np.arange(n) % 2
    ensemble = np.clip(0.5 + ensemble_signal * (labels - 0.5) + rng.normal(0, 0.15, n), 0, 1)
    vcdr = np.clip(0.5 + vcdr_signal * (labels - 0.5) + rng.normal(0, 0.1, n), 0, 1)
    vcdr[rng.random(n) < without_vcdr] = np.nan
    return SiteSample(labels, ensemble, vcdr, rng.uniform(0, spread, n))


def _specificity(labels, scores, threshold):
    return float(np.mean(scores[labels == 0] < threshold))


@pytest.mark.parametrize("specificity", [0.5, 0.85, 0.9, 0.95, 1.0])
@pytest.mark.parametrize("decimals", [2, 6])  # coarse scores tie, fine ones do not
def test_the_threshold_is_the_lowest_that_meets_the_specificity(specificity, decimals):
    rng = np.random.default_rng(decimals)
    labels = np.r_[np.zeros(37, int), np.ones(23, int)]
    scores = np.round(rng.random(60), decimals)
    t = threshold_at_specificity(labels, scores, specificity)
    assert _specificity(labels, scores, t) >= specificity
    # lower, at the highest normal score under it, the sample's specificity falls short
    lower = scores[(labels == 0) & (scores < t)].max()
    assert _specificity(labels, scores, lower) < specificity
    # and no photograph lies between that score and the threshold: sensitivity is the most it can be
    assert not np.any((scores > lower) & (scores < t))


def test_a_cut_above_every_value_and_at_exact_ties():
    assert lowest_cut(np.array([0.3, 0.3, 0.3]), 1.0) > 0.3
    assert lowest_cut(np.array([0.1, 0.3, 0.3, 0.5]), 0.5) == pytest.approx(0.4)  # midway to the next value
    assert lowest_cut(np.array([0.2, 0.7]), 0.0) == 0.2  # nothing need fall below: everything reaches it


def test_the_weight_follows_the_better_witness():
    rng = np.random.default_rng(0)
    assert best_vcdr_weight(_site(rng, vcdr_signal=0.2), ENSEMBLE) >= 0.8  # the vCDR ranks, the ensemble is noise
    assert best_vcdr_weight(_site(rng, ensemble_signal=0.3), ENSEMBLE) <= 0.2  # and the other way round
    assert best_vcdr_weight(_site(rng, vcdr_signal=0.6), replace(ENSEMBLE, vcdr=None)) is None  # no vCDR model


def test_a_sample_without_vcdrs_keeps_the_weight():
    site = _site(np.random.default_rng(1), ensemble_signal=0.4, without_vcdr=1.0)
    for weight in (0.3, 0.5, 0.33):  # every weight ranks alike: the bundle's stays, even off the grid
        assert best_vcdr_weight(site, replace(ENSEMBLE, vcdr=replace(ENSEMBLE.vcdr, weight=weight))) == weight
    assert 0.33 not in WEIGHTS


def test_probabilities_are_the_runtimes():
    site = _site(np.random.default_rng(2), without_vcdr=0.3)
    expected = [
        ENSEMBLE.vcdr.combine(float(e), None if np.isnan(v) else float(v)) for e, v in zip(site.ensemble, site.vcdr)
    ]
    assert np.array_equal(site.probabilities(ENSEMBLE), expected)
    assert np.array_equal(site.probabilities(replace(ENSEMBLE, vcdr=None)), site.ensemble)
    assert site.without_vcdr == int(np.isnan(site.vcdr).sum()) > 0


def test_calibration_meets_its_targets_on_the_sample():
    site = _site(np.random.default_rng(3), ensemble_signal=0.3, vcdr_signal=0.5, without_vcdr=0.2)
    fitted = calibrate_ensemble(ENSEMBLE, site, specificity=0.9, uncertain_share=0.2)
    point = operating_point(site, fitted)
    assert point.specificity >= 0.9 and point.uncertain <= 0.2 * len(site)
    assert point.uncertain >= 0.2 * len(site) - 2  # ties aside, about the share asked for
    assert point.auc >= operating_point(site, ENSEMBLE).auc  # the weight was chosen for it
    assert (fitted.members, fitted.merge, fitted.heatmaps) == (ENSEMBLE.members, ENSEMBLE.merge, ENSEMBLE.heatmaps)
    assert (fitted.vcdr.intercept, fitted.vcdr.slope) == (ENSEMBLE.vcdr.intercept, ENSEMBLE.vcdr.slope)


def test_the_uncertainty_is_kept_where_members_never_disagree_or_when_asked():
    site = _site(np.random.default_rng(4), ensemble_signal=0.3, spread=0.0)  # one member: spread 0
    assert calibrate_ensemble(ENSEMBLE, site).uncertainty == ENSEMBLE.uncertainty
    site = _site(np.random.default_rng(4), ensemble_signal=0.3)
    assert calibrate_ensemble(ENSEMBLE, site, uncertain_share=None).uncertainty == ENSEMBLE.uncertainty
    assert calibrate_ensemble(ENSEMBLE, site).uncertainty != ENSEMBLE.uncertainty


def test_too_few_of_a_class_or_targets_out_of_range_are_refused():
    site = _site(np.random.default_rng(5), n=80)
    few = SiteSample(*(a[:12] for a in (np.r_[np.ones(8, int), np.zeros(4, int)], site.ensemble, site.vcdr,
                                        site.spread)))  # fmt: skip
    with pytest.raises(CalibrationError, match="8 glaucoma and 4 normal"):
        calibrate_ensemble(ENSEMBLE, few)
    with pytest.raises(CalibrationError, match="specificity"):
        calibrate_ensemble(ENSEMBLE, site, specificity=1.5)
    with pytest.raises(CalibrationError, match="uncertain share"):
        calibrate_ensemble(ENSEMBLE, site, uncertain_share=1.0)
