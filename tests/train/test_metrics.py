import numpy as np
import pytest

from fundusrt.train.metrics import (
    auc,
    classification_metrics,
    cup_dice,
    dice,
    disc_dice,
    fovea_distance,
    segmentation_metrics,
    sensitivity_at_specificity,
    vcdr_error,
)


def test_dice_hand_case():
    a = np.zeros((4, 4), bool)
    a[0, :4] = True  # 4 pixels
    b = np.zeros((4, 4), bool)
    b[0, :2] = True  # 2 pixels, both in a
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    assert dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0  # documented extension
    assert dice(a, np.zeros((4, 4))) == 0.0


def _mask(disc_rows, disc_cols, cup_rows, cup_cols, shape=(12, 12)):
    m = np.full(shape, 255, np.uint8)
    m[disc_rows, disc_cols] = 128
    m[cup_rows, cup_cols] = 0
    return m


def test_cup_and_disc_dice_use_refuge_coding():
    truth = _mask(slice(2, 10), slice(2, 10), slice(4, 8), slice(4, 8))  # disc 64 px, cup 16 px
    pred = _mask(slice(2, 10), slice(2, 6), slice(4, 8), slice(4, 6))  # disc 32 px, cup 8 px
    assert disc_dice(pred, truth) == pytest.approx(2 * 32 / 96)
    assert cup_dice(pred, truth) == pytest.approx(2 * 8 / 24)


def test_vcdr_error_and_means():
    truth = _mask(slice(2, 10), slice(2, 10), slice(4, 8), slice(4, 8))  # 4/8
    pred = _mask(slice(2, 10), slice(2, 10), slice(3, 9), slice(4, 8))  # 6/8
    assert vcdr_error(pred, truth) == pytest.approx(0.25, abs=1e-6)
    m = segmentation_metrics([pred, truth], [truth, truth])
    assert m["vcdr_mae"] == pytest.approx(0.125, abs=1e-6) and m["od_dice"] == pytest.approx(1.0)
    assert m["oc_dice"] == pytest.approx((2 * 16 / 40 + 1) / 2)


def test_auc_hand_case():
    # Positive-negative pairs ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); wrong: (0.35 < 0.4).
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_sensitivity_at_85_specificity_interpolates_the_roc():
    negatives = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05]
    positives = [0.95, 0.85, 0.5, 0.1]  # ties with the top two negatives: diagonal ROC segments
    labels = [0] * 10 + [1] * 4
    # ROC: threshold 0.95 -> (fpr 0.1, tpr 0.25); threshold 0.85 -> (0.2, 0.5).
    # Specificity 0.85 is fpr 0.15, halfway along that segment: sensitivity 0.375.
    assert sensitivity_at_specificity(labels, negatives + positives) == pytest.approx(0.375)
    assert sensitivity_at_specificity(labels, negatives + positives, specificity=0.9) == pytest.approx(0.25)
    m = classification_metrics(labels, negatives + positives)
    assert set(m) == {"auc", "sensitivity_at_85_specificity"}


def test_sensitivity_at_a_vertical_roc_step_follows_the_official_code():
    # ROC points (fpr, tpr): (0.1, 0), (0.1, 0.25), (0.2, 0.5). The official evaluation
    # interpolates sensitivity over specificity with scipy's interp1d, which orders points by
    # specificity (stably), so at specificity 0.9 the step's first point (tpr 0) bounds the
    # segment towards 0.8: at 0.85 the answer is (0 + 0.5) / 2 = 0.25, not 0.375.
    negatives = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05]
    positives = [0.9, 0.85, 0.5, 0.1]
    labels = [0] * 10 + [1] * 4
    assert sensitivity_at_specificity(labels, negatives + positives) == pytest.approx(0.25)


def test_fovea_distance():
    assert fovea_distance([(0, 0), (3, 4)], [(0, 0), (0, 0)]) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        fovea_distance([(0, 0)], [(0, 0), (1, 1)])
