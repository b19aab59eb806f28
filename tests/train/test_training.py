"""The training command end to end, on a handful of tiny phantoms."""

import json

import pytest
import torch

from fundusrt.runtime.cli import main
from fundusrt.train.datasets import load_specs
from fundusrt.train.models import load_model
from fundusrt.train.run_evaluation import evaluate_run
from fundusrt.train.synth import write_phantom_dataset


@pytest.fixture(scope="module")
def phantom_spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph")
    write_phantom_dataset(out, 10, seed=8, width=600)
    return f"phantom:{out}"


def _history(folder):
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_locate_trains_two_steps_and_resumes(phantom_spec, tmp_path):
    run = tmp_path / "loc"
    common = ["train", "locate", "--data", phantom_spec, "--out", str(run), "--size", "64", "--batch-size", "4",
              "--unet-base", "8", "--val-fraction", "0.3"]  # fmt: skip
    assert main(common + ["--epochs", "1"]) == 0
    first = _history(run / "unet")
    assert len(first) == 1 and {"loss", "fovea_distance_px", "fovea_error_of_width", "found"} <= set(first[0])
    assert main(common + ["--epochs", "2", "--resume"]) == 0
    history = _history(run / "unet")
    assert [h["epoch"] for h in history] == [1, 2]
    model, checkpoint = load_model(run / "unet" / "best.pt")
    assert checkpoint["preprocess"]["size"] == 64 and checkpoint["preprocess"]["normalization"]["per_image"]
    assert checkpoint["preprocess"]["crop_factor"] is None and checkpoint["task"] == "locate"
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 2 and config["lr"] == 1e-3 and config["batch_size"] == 4


def test_segment_step_changes_the_weights(phantom_spec, tmp_path):
    run = tmp_path / "seg"
    assert main(["train", "segment", "--data", phantom_spec, "--out", str(run), "--size", "192", "--epochs", "1",
                 "--batch-size", "4", "--limit", "8", "--bce", "1"]) == 0  # fmt: skip
    metrics = _history(run / "cenet")[0]
    assert {"od_dice", "oc_dice", "vcdr_mae"} <= set(metrics)
    torch.manual_seed(0)
    from fundusrt.train.models import create_model

    untrained = create_model("cenet_resnet34").state_dict()
    trained, _ = load_model(run / "cenet" / "last.pt")
    assert not torch.equal(untrained["head.4.weight"], trained.state_dict()["head.4.weight"])


def test_classify_one_member_and_evaluate_the_run(phantom_spec, tmp_path):
    run = tmp_path / "cls"
    assert main(["train", "classify", "--data", phantom_spec, "--out", str(run), "--size", "64", "--epochs", "1",
                 "--batch-size", "4", "--member", "crop_gap", "--member", "full_gap"]) == 0  # fmt: skip
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["crop_gap", "full_gap"]
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["members"]) == {"crop_gap", "full_gap"}
    scores = evaluate_run(run, load_specs(phantom_spec))
    assert 0.0 <= scores["ensemble"]["accuracy"] <= 1.0 and set(scores["members"]) == {"crop_gap", "full_gap"}


def test_unknown_member_is_refused(phantom_spec, tmp_path):
    with pytest.raises(SystemExit, match="unknown member 'crop_vgg'"):
        main(["train", "classify", "--data", phantom_spec, "--out", str(tmp_path), "--member", "crop_vgg"])


def test_leave_one_dataset_out_prints_a_row_per_dataset(phantom_spec, tmp_path, capsys):
    # Two "datasets": the phantoms, and ACRIMA-style disc crops named by label.
    import cv2
    import numpy as np

    acrima = tmp_path / "acrima"
    acrima.mkdir()
    for name in ("Im001_ACRIMA.jpg", "Im002_g_ACRIMA.jpg", "Im003_ACRIMA.jpg", "Im004_g_ACRIMA.jpg"):
        cv2.imwrite(str(acrima / name), np.full((80, 80, 3), 120, np.uint8))
    run = tmp_path / "lodo"
    assert main(["train", "classify", "--data", f"{phantom_spec},acrima:{acrima}", "--out", str(run), "--lodo",
                 "--size", "64", "--epochs", "1", "--batch-size", "4", "--member", "crop_gap"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| phantom | 4 | 10 |" in out and "| acrima | 10 | 4 |" in out
    assert (run / "lodo-phantom" / "crop_gap" / "best.pt").exists() and (run / "lodo-acrima" / "summary.json").exists()


def test_unreadable_images_are_skipped_with_one_line_each(phantom_spec, tmp_path, capsys):
    import shutil

    copy = tmp_path / "ph"
    shutil.copytree(phantom_spec.split(":", 1)[1], copy)
    images = sorted((copy / "Training400").rglob("*.jpg"))
    images[0].write_bytes(images[0].read_bytes()[:1000])  # truncated
    images[1].write_bytes(b"")  # empty
    run = tmp_path / "run"
    assert main(["train", "locate", "--data", f"phantom:{copy}", "--out", str(run), "--size", "64", "--epochs", "1",
                 "--batch-size", "4", "--unet-base", "8"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"skipping {images[0]}: truncated JPEG" in err and f"skipping {images[1]}: empty file" in err
    assert "2 of 10 samples skipped" in err
    config = json.loads((run / "config.json").read_text())
    assert config["train_samples"] + config["val_samples"] == 8


def test_balanced_drawing_gives_each_source_and_label_the_same_share():
    from collections import Counter

    from fundusrt.train.datasets import Sample
    from fundusrt.train.loop import balanced_weights

    samples = [Sample(image=f"r{i}.jpg", dataset="refuge", split="train", label=int(i < 4)) for i in range(40)]
    samples += [Sample(image=f"a{i}.jpg", dataset="acrima", split="train", label=int(i < 50)) for i in range(90)]
    share = Counter()
    for sample, weight in zip(samples, balanced_weights(samples)):
        share[sample.dataset, sample.label] += weight
    assert len(share) == 4 and all(abs(v - 1.0) < 1e-9 for v in share.values())
