import cv2
import numpy as np
import pytest


@pytest.fixture
def write_rgb(tmp_path):
    """Write an RGB array with OpenCV (which wants BGR) and return the path."""

    def write(name: str, rgb: np.ndarray, *params) -> str:
        path = tmp_path / name
        array = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
        assert cv2.imwrite(str(path), array, list(params))
        return path

    return write
