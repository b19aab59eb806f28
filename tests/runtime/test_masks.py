import numpy as np
import pytest

from fundusrt.runtime.masks import decode_refuge, encode_refuge, refuge_vcdr, vertical_cdr, vertical_diameter


def test_refuge_coding_round_trip_and_cup_inside_disc():
    disc = np.zeros((6, 6), bool)
    disc[1:5, 1:5] = True
    cup = np.zeros((6, 6), bool)
    cup[2:4, 2:4] = True
    cup[0, 0] = True  # outside the disc: dropped
    mask = encode_refuge(disc, cup)
    assert mask[0, 0] == 255 and mask[1, 1] == 128 and mask[2, 2] == 0
    d, c = decode_refuge(mask)
    assert (d == disc).all() and c.sum() == 4


def test_vertical_diameter_is_the_fullest_column():
    region = np.zeros((10, 4), bool)
    region[2:5, 0] = True  # 3
    region[1:8, 2] = True  # 7
    region[0:2, 3] = region[6:9, 3] = True  # 5, not contiguous: still counted
    assert vertical_diameter(region) == 7.0


def test_vcdr_hand_case():
    mask = np.full((10, 10), 255, np.uint8)
    mask[1:9, 3:7] = 128  # disc: 8 rows
    mask[3:7, 4:6] = 0  # cup: 4 rows
    assert refuge_vcdr(mask) == pytest.approx(0.5)
    assert vertical_cdr(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 0.0
