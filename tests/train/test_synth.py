import csv
import filecmp

import cv2
import numpy as np
import pytest

from fundusrt.runtime.cli import main
from fundusrt.train.datasets import load_specs
from fundusrt.train.phantoms import render_phantom
from fundusrt.train.xlsx import read_table


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    assert main(["synth", "--n", "12", "--out", str(out), "--seed", "4", "--width", "700"]) == 0
    return out


def test_writes_the_refuge_training_layout(synth_dir):
    images = sorted(p.relative_to(synth_dir).as_posix() for p in (synth_dir / "Training400").rglob("*.jpg"))
    masks = sorted(p.relative_to(synth_dir).as_posix() for p in synth_dir.rglob("*.bmp"))
    assert len(images) == len(masks) == 12
    assert {p.rsplit("/", 1)[0] for p in images} <= {"Training400/Glaucoma", "Training400/Non-Glaucoma"}
    assert all(p.split("/")[-1][0] == ("g" if "/Glaucoma/" in p else "n") for p in images)
    assert "Training400/Glaucoma/g0001.jpg" in images or "Training400/Non-Glaucoma/n0001.jpg" in images
    for p in masks:
        assert p.startswith("Annotation-Training400/Disc_Cup_Masks/")
    table = read_table(
        synth_dir / "Annotation-Training400" / "Fovea_location.xlsx", ("ID", "ImgName", "Fovea_X", "Fovea_Y")
    )
    assert [r["ID"] for r in table] == list(range(1, 13))


def test_reads_back_with_the_same_truth(synth_dir):
    with open(synth_dir / "phantoms.csv", newline="") as f:
        rows = {r["ImgName"]: r for r in csv.DictReader(f)}
    for spec in (f"phantom:{synth_dir}", f"refuge:{synth_dir}"):
        samples = load_specs(spec)
        assert len(samples) == 12
        for s in samples:
            row = rows[s.name]
            assert s.label == int(row["glaucoma"]) and s.split == "train"
            assert s.fovea == (float(row["fovea_x"]), float(row["fovea_y"]))
            if spec.startswith("phantom"):
                assert s.disc_center == (float(row["disc_x"]), float(row["disc_y"]))
            else:
                assert s.disc_center is None  # REFUGE publishes no disc centre
    # Masks come back bit-exact; images as JPEG of the rendered pixels.
    for s in load_specs(f"phantom:{synth_dir}")[:4]:
        phantom = render_phantom(4, int(rows[s.name]["index"]), width=700)
        assert np.array_equal(s.load_mask(), phantom.mask)
        assert np.abs(s.load_image().astype(int) - phantom.image).mean() < 4


def test_same_seed_same_bytes(synth_dir, tmp_path):
    again = tmp_path / "again"
    assert main(["synth", "--n", "12", "--out", str(again), "--seed", "4", "--width", "700", "--jobs", "2"]) == 0
    comparison = filecmp.dircmp(synth_dir, again)
    files = [p.relative_to(synth_dir) for p in synth_dir.rglob("*") if p.is_file()]
    match, mismatch, errors = filecmp.cmpfiles(synth_dir, again, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors and len(match) == 12 * 2 + 2
    assert not comparison.left_only and not comparison.right_only


def test_preview_png(tmp_path):
    out = tmp_path / "p"
    assert main(["synth", "--n", "1", "--out", str(out), "--width", "640", "--preview", str(tmp_path / "v.png")]) == 0
    preview = cv2.imread(str(tmp_path / "v.png"))
    assert preview.shape[0] == 600 and preview.shape[1] > 1000
