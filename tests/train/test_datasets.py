"""Each adapter on a small tree built here in its dataset's published layout and coding."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from fundusrt.train.datasets import (
    DatasetLayoutError,
    leave_one_dataset_out,
    load_spec,
    load_specs,
    parse_specs,
)
from fundusrt.train.xlsx import write_table

H, W = 60, 80


def _jpg(path: Path, h=H, w=W, value=(180, 80, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value[::-1], np.uint8))


def _png(path: Path, array: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def _refuge_mask(h=H, w=W, cup_rows=(25, 35)):
    m = np.full((h, w), 255, np.uint8)
    m[20:40, 30:50] = 128
    m[cup_rows[0] : cup_rows[1], 35:45] = 0
    return m


# ---------------------------------------------------------------------------- REFUGE


def _refuge_tree(root: Path):
    for name, folder in (("g0001", "Glaucoma"), ("n0001", "Non-Glaucoma"), ("n0002", "Non-Glaucoma")):
        _jpg(root / "Training400" / folder / f"{name}.jpg")
        _png(root / "Annotation-Training400" / "Disc_Cup_Masks" / folder / f"{name}.bmp", _refuge_mask())
    write_table(
        root / "Annotation-Training400" / "Fovea_location.xlsx",
        ("ID", "ImgName", "Fovea_X", "Fovea_Y"),
        [(1, "g0001.jpg", 10.5, 11.5), (2, "n0001.jpg", 12, 13), (3, "n0002.jpg", 14, 15)],
    )
    for name in ("V0001", "V0002"):
        _jpg(root / "REFUGE-Validation400" / f"{name}.jpg")
        _png(root / "REFUGE-Validation400-GT" / "Disc_Cup_Masks" / f"{name}.bmp", _refuge_mask())
    write_table(
        root / "REFUGE-Validation400-GT" / "Fovea_locations.xlsx",
        ("ID", "ImgName", "Glaucoma Label", "Fovea_X", "Fovea_Y"),
        [(1, "V0001.jpg", 1, 20.25, 21), (2, "V0002.jpg", 0, 22, 23)],
    )
    for name, label in (("T0001", 0), ("T0002", 1)):
        _jpg(root / "Test400" / f"{name}.jpg")
        _png(root / "REFUGE-Test-GT" / "Disc_Cup_Masks" / ("G" if label else "N") / f"{name}.bmp", _refuge_mask())
    write_table(
        root / "REFUGE-Test-GT" / "Glaucoma_label_and_Fovea_location.xlsx",
        ("ID", "ImgName", "Label(Glaucoma=1)", "Fovea_X", "Fovea_Y"),
        [(1, "T0001.jpg", 0, 30, 31), (2, "T0002.jpg", 1, 32, 33)],
    )


def test_refuge_reads_all_three_parts(tmp_path):
    _refuge_tree(tmp_path)
    samples = {s.name: s for s in load_spec("refuge", tmp_path)}
    assert len(samples) == 7
    assert samples["g0001.jpg"].label == 1 and samples["n0002.jpg"].label == 0
    assert samples["g0001.jpg"].fovea == (10.5, 11.5) and samples["g0001.jpg"].split == "train"
    assert samples["V0001.jpg"].label == 1 and samples["V0001.jpg"].fovea == (20.25, 21.0)
    assert samples["V0002.jpg"].split == "validation"
    assert samples["T0002.jpg"].label == 1 and samples["T0002.jpg"].split == "test"
    assert samples["T0002.jpg"].mask_files[0].parent.name == "G"
    assert (samples["T0001.jpg"].load_mask() == _refuge_mask()).all()
    assert samples["T0001.jpg"].load_image().shape == (H, W, 3)


def test_refuge_missing_annotations_names_the_path(tmp_path):
    _refuge_tree(tmp_path)
    (tmp_path / "Annotation-Training400" / "Fovea_location.xlsx").unlink()
    with pytest.raises(DatasetLayoutError, match="Fovea_location.xlsx"):
        load_spec("refuge", tmp_path)


# ---------------------------------------------------------------------------- ORIGA


def test_origa_labels_splits_and_mask_coding(tmp_path):
    labels_mask = np.zeros((H, W), np.uint8)
    labels_mask[20:40, 30:50] = 1  # rim
    labels_mask[25:35, 35:45] = 2  # cup
    rows = [("OD", "001.jpg", 0.5, "A", 0), ("OS", "002.jpg", 0.7, "B", 1)]
    for _, name, *_ in rows:
        _jpg(tmp_path / "Images" / name)
        _png(tmp_path / "Masks" / f"{Path(name).stem}.png", labels_mask)
    with open(tmp_path / "OrigaList.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Eye", "Filename", "ExpCDR", "Set", "Glaucoma"])
        writer.writerows(rows)
    samples = load_spec("origa", tmp_path)
    assert [(s.name, s.label, s.split) for s in samples] == [("001.jpg", 0, "train"), ("002.jpg", 1, "test")]
    assert (samples[0].load_mask() == _refuge_mask()).all()


def test_origa_missing_csv(tmp_path):
    (tmp_path / "Images").mkdir()
    (tmp_path / "Masks").mkdir()
    with pytest.raises(DatasetLayoutError, match="OrigaList.csv"):
        load_spec("origa", tmp_path)


# ---------------------------------------------------------------------------- Drishti-GS1


def _soft(agreeing_experts: np.ndarray) -> np.ndarray:
    """A three-channel soft map: the share of four experts, 0-255, as the dataset ships it."""
    value = np.round(agreeing_experts / 4 * 255).astype(np.uint8)
    return np.dstack([value] * 3)


def _drishti_tree(root: Path):
    files = root / "Drishti-GS1_files"
    experts_disc = np.zeros((H, W))
    experts_disc[20:40, 30:50] = 4
    experts_disc[18:20, 30:50] = 1  # one expert only: outside under the majority rule
    experts_cup = np.zeros((H, W))
    experts_cup[25:35, 35:45] = 2  # half of the experts: inside
    for part, gt, stems in (("Training", "GT", ["drishtiGS_002"]), ("Test", "Test_GT", ["drishtiGS_001"])):
        for stem in stems:
            _png(files / part / "Images" / f"{stem}.png", np.full((H, W, 3), 90, np.uint8))
            soft = files / part / gt / stem / "SoftMap"
            _png(soft / f"{stem}_ODsegSoftmap.png", _soft(experts_disc))
            _png(soft / f"{stem}_cupsegSoftmap.png", _soft(experts_cup))
            centre = files / part / gt / stem / "AvgBoundary" / f"{stem}_diskCenter.txt"
            centre.parent.mkdir(parents=True, exist_ok=True)
            centre.write_text("30 40\n")  # row col
    # The diagnosis sheet: title rows above the header, names with a trailing quote mark.
    write_table(
        files / "Drishti-GS1_diagnosis.xlsx",
        ("Drishti-GS1 diagnosis",),
        [(), ("", "", ""), ("Sl. No", "Drishti-GS File", "Patient ID", "Total"),
         (1, "drishtiGS_001'", "P1", "Glaucomatous"), (2, "drishtiGS_002'", "P2", "Normal")],
    )  # fmt: skip


def test_drishti_soft_maps_labels_and_disc_centre(tmp_path):
    _drishti_tree(tmp_path)
    for root in (tmp_path, tmp_path / "Drishti-GS1_files"):
        samples = {s.image.stem: s for s in load_spec("drishti", root)}
        assert samples["drishtiGS_001"].label == 1 and samples["drishtiGS_001"].split == "test"
        assert samples["drishtiGS_002"].label == 0 and samples["drishtiGS_002"].split == "train"
        assert samples["drishtiGS_002"].disc_center == (40.0, 30.0)
        assert (samples["drishtiGS_002"].load_mask() == _refuge_mask()).all()


def test_drishti_missing_gt(tmp_path):
    _drishti_tree(tmp_path)
    (
        tmp_path
        / "Drishti-GS1_files"
        / "Test"
        / "Test_GT"
        / "drishtiGS_001"
        / "SoftMap"
        / "drishtiGS_001_cupsegSoftmap.png"
    ).unlink()
    with pytest.raises(DatasetLayoutError, match="drishtiGS_001_cupsegSoftmap.png"):
        load_spec("drishti", tmp_path)


# ---------------------------------------------------------------------------- RIM-ONE r3


def test_rimone_keeps_the_left_stereo_half(tmp_path):
    for folder, stem in (("Healthy", "N-1-L"), ("Glaucoma and suspects", "G-2-R"), ("Glaucoma and suspects", "S-3-L")):
        stereo = np.zeros((H, 2 * W, 3), np.uint8)
        stereo[:, :W] = (20, 90, 200)  # left view (BGR)
        stereo[:, W:] = (200, 90, 20)
        _png(tmp_path / folder / "Stereo Images" / f"{stem}.jpg", stereo)
        disc = np.zeros((H, 2 * W), np.uint8)
        disc[20:40, 30:50] = 255
        cup = np.zeros((H, 2 * W), np.uint8)
        cup[25:35, 35:45] = 255
        _png(tmp_path / folder / "Expert1_masks" / f"{stem}-1-Disc-exp1.png", disc)
        _png(tmp_path / folder / "Expert1_masks" / f"{stem}-1-Cup-exp1.png", cup)
    samples = {s.image.stem: s for s in load_spec("rimone", tmp_path)}
    assert samples["N-1-L"].label == 0 and samples["G-2-R"].label == 1 and samples["S-3-L"].label is None
    image = samples["G-2-R"].load_image()
    assert image.shape == (H, W, 3) and image[..., 0].mean() > 150  # the left view is red
    assert (samples["S-3-L"].load_mask() == _refuge_mask()).all()


# ---------------------------------------------------------------------------- ACRIMA


@pytest.mark.parametrize("sub", [".", "Images", "Database/Images"])
def test_acrima_labels_from_names(tmp_path, sub):
    for name in ("Im001_ACRIMA.jpg", "Im310_g_ACRIMA.jpg"):
        _jpg(tmp_path / sub / name)
    samples = load_spec("acrima", tmp_path)
    assert [(s.name, s.label) for s in samples] == [("Im001_ACRIMA.jpg", 0), ("Im310_g_ACRIMA.jpg", 1)]
    assert not samples[0].has_mask and samples[0].load_mask() is None


# ---------------------------------------------------------------------------- specs, errors, LODO


@pytest.mark.parametrize("name", ["refuge", "origa", "drishti", "rimone", "acrima", "phantom"])
def test_a_wrong_folder_names_what_is_missing(tmp_path, name):
    with pytest.raises(DatasetLayoutError) as caught:
        load_spec(name, tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value) and "\n" not in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="missing .*empty"):
        load_spec(name, tmp_path / "empty")


def test_parse_specs():
    assert parse_specs("refuge:/a,b,origa:/c") == [("refuge", Path("/a,b")), ("origa", Path("/c"))]
    with pytest.raises(ValueError, match="unknown dataset 'kaggle'"):
        parse_specs("kaggle:/x")
    with pytest.raises(ValueError, match="NAME:PATH"):
        parse_specs("refuge")


def test_leave_one_dataset_out(tmp_path):
    for name in ("Im001_ACRIMA.jpg", "Im002_g_ACRIMA.jpg"):
        _jpg(tmp_path / "acrima" / name)
    _refuge_tree(tmp_path / "refuge")
    samples = load_specs(f"refuge:{tmp_path / 'refuge'},acrima:{tmp_path / 'acrima'}")
    folds = leave_one_dataset_out(samples)
    assert [f.held_out for f in folds] == ["refuge", "acrima"]
    assert len(folds[0].validation) == 7 and len(folds[0].train) == 2
    assert {s.dataset for s in folds[1].train} == {"refuge"}
    with pytest.raises(ValueError, match="at least two"):
        leave_one_dataset_out(folds[0].validation)
