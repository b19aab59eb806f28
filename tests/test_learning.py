"""The learning targets on phantoms (benchmarks/learning.py), end to end: about 80 minutes on 2 cores,
so marked slow (`make test-slow`)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_three_stages_learn_on_phantoms(tmp_path):
    # benchmarks/learning.py exits 1 unless OD Dice >= 0.85, OC Dice >= 0.70, fovea error <= 5 % of
    # the image width and ensemble AUC >= 0.85 on held-out phantoms.
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning.py"), "--out", str(tmp_path)])
    assert done.returncode == 0
