"""``csv:TABLE``: a user's own photographs in a table, and the hash hold-out by file name."""

import csv

import cv2
import numpy as np
import pytest

from fundusrt.runtime.cli import main
from fundusrt.train.datasets import DatasetLayoutError, hash_holdout, load_specs, write_table
from fundusrt.train.synth import write_phantom_dataset


def _image(path, h=40, w=50):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))
    return path


def _mask(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), values)
    return path


def _table(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_rows_read_relative_to_the_table_with_every_mask_coding(tmp_path):
    refuge = np.full((40, 50), 255, np.uint8)
    refuge[10:30, 10:30], refuge[15:25, 15:25] = 128, 0
    labels = np.zeros((40, 50), np.uint8)
    labels[10:30, 10:30], labels[15:25, 15:25] = 1, 2
    disc, cup = np.where(refuge < 255, 255, 0).astype(np.uint8), np.where(refuge == 0, 255, 0).astype(np.uint8)
    _image(tmp_path / "photos" / "a.jpg")
    _image(tmp_path / "photos" / "b.png")
    _image(tmp_path / "photos" / "c.jpg")
    _image(tmp_path / "photos" / "d.jpg")
    _mask(tmp_path / "masks" / "a.bmp", refuge)
    _mask(tmp_path / "masks" / "b.png", labels)
    _mask(tmp_path / "masks" / "c_disc.png", disc)
    _mask(tmp_path / "masks" / "c_cup.png", cup)
    table = _table(
        tmp_path / "mycamera.csv",
        ["image", "mask", "mask_coding", "disc_mask", "cup_mask", "glaucoma", "fovea_x", "fovea_y", "disc_x", "disc_y"],
        [
            ["photos/a.jpg", "masks/a.bmp", "", "", "", "1", "30.5", "20", "12", "19"],
            ["photos/b.png", "masks/b.png", "labels", "", "", "0", "", "", "", ""],
            ["photos/c.jpg", "", "", "masks/c_disc.png", "masks/c_cup.png", "", "", "", "", ""],
            [str(tmp_path / "photos" / "d.jpg"), "", "", "", "", "", "", "", "", ""],  # absolute, nothing else
        ],
    )
    samples = {s.name: s for s in load_specs(f"csv:{table}")}
    assert list(samples) == ["a.jpg", "b.png", "c.jpg", "d.jpg"]
    a, b, c, d = samples.values()
    assert a.dataset == "mycamera" and a.split == "all" and a.label == 1 and b.label == 0 and c.label is None
    assert a.fovea == (30.5, 20.0) and a.disc_center == (12.0, 19.0) and b.fovea is None
    for s in (a, b, c):
        assert (s.load_mask() == refuge).all()
    assert not d.has_mask and d.load_image().shape == (40, 50, 3)


def test_each_bad_row_is_one_line_naming_it_and_the_rest_is_used(tmp_path, capsys):
    _image(tmp_path / "ok.jpg")
    table = _table(
        tmp_path / "t.csv",
        ["image", "mask", "mask_coding", "glaucoma", "fovea_x", "fovea_y", "split"],
        [
            ["ok.jpg", "", "", "1", "3", "4", "train"],
            ["missing.jpg", "", "", "0", "", "", ""],
            ["ok.jpg", "", "", "yes", "", "", ""],
            ["ok.jpg", "", "", "0", "3", "", ""],
            ["ok.jpg", "", "", "0", "x", "4", ""],
            ["ok.jpg", "ok.jpg", "rgb", "0", "", "", ""],
            ["ok.jpg", "", "", "0", "", "", "holdout"],
            ["", "", "", "0", "", "", ""],
            ["", "", "", "", "", "", ""],  # a blank line is no row
        ],
    )
    samples = load_specs(f"csv:{table}")
    assert len(samples) == 1 and samples[0].split == "train"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 7
    expected = [
        ("row 3", "missing.jpg does not exist"),
        ("row 4", "glaucoma 'yes' is not 1, 0 or empty"),
        ("row 5", "fovea_x and fovea_y come together"),
        ("row 6", "is not a pair of numbers"),
        ("row 7", "mask_coding 'rgb'"),
        ("row 8", "split 'holdout'"),
        ("row 9", "no image path"),
    ]
    for line, (row, reason) in zip(lines, expected):
        assert line.startswith(f"skipping {table} {row}: ") and reason in line


def test_a_table_without_an_image_column_or_with_an_unknown_one_is_refused(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no 'image' column"):
        load_specs(f"csv:{_table(tmp_path / 'a.csv', ['photo'], [['x.jpg']])}")
    with pytest.raises(DatasetLayoutError, match="unknown column 'eye'"):
        load_specs(f"csv:{_table(tmp_path / 'b.csv', ['image', 'eye'], [['x.jpg', 'OD']])}")
    with pytest.raises(DatasetLayoutError, match="missing"):
        load_specs(f"csv:{tmp_path / 'nowhere.csv'}")


def test_the_hash_hold_out_depends_on_the_file_name_only(tmp_path):
    write_phantom_dataset(tmp_path / "ph", 40, seed=3, width=200)
    samples = load_specs(f"phantom:{tmp_path / 'ph'}")
    kept, held = hash_holdout(samples, 0.25)
    assert len(kept) + len(held) == 40 and 4 <= len(held) <= 16
    # The same photographs listed in a table (another dataset name, another folder) split the same way.
    table = write_table(samples, tmp_path / "copy" / "all.csv")
    again = load_specs(f"csv:{table}")
    assert [s.name for s in hash_holdout(again, 0.25)[1]] == [s.name for s in held]
    # ... and a salted hold-out inside the kept part is another draw.
    assert {s.name for s in hash_holdout(kept, 0.25, salt="dev")[1]} - {s.name for s in held}


def test_a_table_round_trips_every_truth(tmp_path):
    write_phantom_dataset(tmp_path / "ph", 3, seed=4, width=200)
    samples = load_specs(f"phantom:{tmp_path / 'ph'}")
    again = load_specs(f"csv:{write_table(samples, tmp_path / 'all.csv')}")
    for s, t in zip(samples, again):
        assert (t.label, t.fovea, t.disc_center, t.split) == (s.label, s.fovea, s.disc_center, s.split)
        assert t.dataset == s.dataset == "phantom"  # the source survives, not the table's name
        assert (t.load_mask() == s.load_mask()).all()


def test_data_with_only_a_validation_split_still_trains(tmp_path, capsys):
    write_phantom_dataset(tmp_path / "ph", 10, seed=5, width=400)
    samples = load_specs(f"phantom:{tmp_path / 'ph'}")
    table = tmp_path / "validation_only.csv"
    write_table(samples, table)
    rows = list(csv.DictReader(open(table)))
    for row in rows:
        row["split"] = "validation"
    _table(table, list(rows[0]), [list(r.values()) for r in rows])
    run = tmp_path / "run"
    assert main(["train", "locate", "--data", f"csv:{table}", "--out", str(run), "--size", "64", "--epochs", "1",
                 "--batch-size", "4", "--unet-base", "8", "--val-fraction", "0.3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    held = len(hash_holdout(samples, 0.3)[1])
    assert f"the data has only validation/test splits: {held} of 10 samples held out for validation" in out
    assert f"locate: {10 - held} training and {held} validation samples" in out
