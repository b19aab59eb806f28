"""Evidence maps land on the pixels the classifier saw."""

import numpy as np

from fundusrt.runtime import heatmap
from fundusrt.runtime.field_of_view import FieldOfView


def _hot_cell(rows: int, cols: int, at: tuple[int, int]) -> np.ndarray:
    cams = np.zeros((1, rows, cols), np.float32)
    cams[0, at[0], at[1]] = 5.0
    return cams


def test_a_hot_cell_of_the_full_view_lands_where_the_view_saw_it():
    # A 1200 x 800 photograph whose field of view (radius 380 around (620, 410)) the classifier sees at 256².
    image = np.full((800, 1200, 3), 60, np.uint8)
    fov = FieldOfView(center=(620.0, 410.0), radius=380.0, found=True)
    size = 256
    to_view = fov.view_transform(size)
    cams = _hot_cell(8, 8, (2, 5))  # row 2, column 5 of the 8 x 8 last stage: a 32-px cell of the view
    picture = heatmap.over_photograph(image, cams, fov, size)
    assert picture.shape == image.shape
    changed = np.abs(picture.astype(int) - image).sum(axis=2)
    y, x = np.unravel_index(np.argmax(changed), changed.shape)
    expected = to_view.inverse()([5 * 32 + 15.5, 2 * 32 + 15.5])  # the cell's centre, in original pixels
    assert np.hypot(x - expected[0], y - expected[1]) < 0.5 * 32 / to_view.scale
    far = to_view.inverse()([15.5, 240.0])  # a cold corner of the view stays the photograph
    assert changed[round(far[1]), round(far[0])] == 0
    # a hot cell in the view's corner, outside the field of view, leaves that corner uncoloured
    corner = heatmap.over_photograph(image, _hot_cell(8, 8, (0, 0)), fov, size)
    x, y = np.round(to_view.inverse()([15.5, 15.5])).astype(int)
    assert np.array_equal(corner[y, x], image[y, x])


def test_disc_crop_maps_fill_the_crop_and_flat_maps_draw_nothing():
    crop = np.full((384, 384, 3), 100, np.uint8)
    cams = np.stack([_hot_cell(4, 4, (3, 0))[0], _hot_cell(4, 4, (3, 0))[0]])  # two members, same evidence
    picture = heatmap.over_crop(crop, cams)
    changed = np.abs(picture.astype(int) - crop).sum(axis=2)
    y, x = np.unravel_index(np.argmax(changed), changed.shape)
    assert y > 288 and x < 96  # the bottom-left cell
    flat = heatmap.over_crop(crop, np.full((1, 4, 4), 2.0, np.float32))
    assert np.array_equal(flat, crop)  # no position stands out: nothing is coloured


def test_scaled_spans_zero_to_one():
    s = heatmap.scaled(np.array([[-3.0, 1.0], [0.0, 5.0]]))
    assert s.min() == 0.0 and s.max() == 1.0 and s[1, 0] == 3.0 / 8.0
