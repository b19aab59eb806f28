"""``fundusrt screen`` end to end: every bad input gets its own record, nothing is lost, runs resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fundusrt.runtime.cli import main
from fundusrt.runtime.inputs import identity
from fundusrt.runtime.outputs import ResultWriter, read_records
from fundusrt.runtime.result import Result
from fundusrt.train.phantoms import render_phantom


def bgr(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of good phantoms and every kind of bad input a screening run meets."""
    root = tmp_path_factory.mktemp("inputs")
    good = root / "good"
    good.mkdir()
    for i in range(3):
        cv2.imwrite(str(good / f"phantom{i}.jpg"), bgr(render_phantom(3, i, width=640).image))
    bad = root / "bad"
    bad.mkdir()
    photo = render_phantom(3, 7, width=640).image
    (bad / "zero_bytes.jpg").write_bytes(b"")
    encoded = cv2.imencode(".jpg", bgr(photo))[1].tobytes()
    (bad / "truncated.jpg").write_bytes(encoded[: len(encoded) // 2])
    (bad / "text.jpg").write_text("this is not an image\n")
    cv2.imwrite(str(bad / "one_pixel.png"), np.full((1, 1, 3), 128, np.uint8))
    cv2.imwrite(str(bad / "grayscale.png"), cv2.cvtColor(bgr(photo), cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(bad / "rgba.png"), cv2.cvtColor(bgr(photo), cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(bad / "sixteen_bit.png"), bgr(photo).astype(np.uint16) * 257)
    cv2.imwrite(str(bad / "all_black.png"), np.zeros((480, 640, 3), np.uint8))
    no_disc = photo.copy()  # the disc painted over with the retina's median colour
    cx, cy = render_phantom(3, 7, width=640).truth.disc_center
    retina = tuple(int(v) for v in np.median(photo[photo.sum(2) > 60], axis=0))
    cv2.circle(no_disc, (round(cx), round(cy)), 60, retina, -1)
    cv2.imwrite(str(bad / "no_disc.jpg"), bgr(no_disc))
    huge = cv2.resize(bgr(photo), (12000, 9000), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(bad / "huge_12000x9000.jpg"), huge, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return root


def screen(*args):
    return main(["screen", *map(str, args), "--quiet"])


def start_screen(folder, bundle, out, *, after_records: int):
    """``fundusrt screen`` in its own process, slowly (one thread, batches of 2), returned once it has
    written ``after_records`` records: ready to be interrupted part way."""
    command = [sys.executable, "-m", "fundusrt.runtime.cli", "screen", str(folder), "--bundle", str(bundle),
               "--out", str(out), "--batch", "2", "--quiet", "--threads", "1"]  # fmt: skip
    # A background job of a non-interactive shell (as CI may be) inherits SIGINT ignored, and Python
    # then installs no Ctrl-C handler: give the child the default disposition a terminal would.
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    log = Path(out) / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(read_records(log)[0]) < after_records):
        time.sleep(0.01)
    return process


def records(out):
    return {Path(r["path"]).name: r for r in read_records(Path(out) / "results.jsonl")[0]}


def test_screen_writes_records_masks_overlays_and_the_refuge_layout(tiny_runs, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    rc = screen(inputs / "good", "--bundle", tiny_runs["bundle"], "--out", out, "--masks", "--overlays",
                "--refuge-submission", "--heatmaps", "--batch", "2")  # fmt: skip
    assert rc == 0
    got = records(out)
    assert set(got) == {"phantom0.jpg", "phantom1.jpg", "phantom2.jpg"} and all(r["ok"] for r in got.values())
    for name, r in got.items():
        stem = Path(name).stem
        assert set(r) >= {
            "path",
            "ok",
            "error",
            "glaucoma_probability",
            "glaucoma",
            "vcdr",
            "disc_center",
            "fovea",
            "flags",
        }
        mask = cv2.imread(str(out / "masks" / "good" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (r["image_size"][1], r["image_size"][0]) and set(np.unique(mask)) <= {0, 128, 255}
        assert cv2.imread(str(out / "overlays" / "good" / f"{stem}.jpg")).shape[:2] == mask.shape
        assert (out / "refuge" / "segmentation" / f"{stem}.bmp").is_file()
        assert r["files"] == {
            "mask": f"masks/good/{stem}.png", "overlay": f"overlays/good/{stem}.jpg",
            "heatmap_disc": f"heatmaps/good/{stem}.disc.jpg",
        }  # fmt: skip
        assert cv2.imread(str(out / r["files"]["heatmap_disc"])).shape == (384, 384, 3)
        assert set(r["quality"]) == {"score", "gradable", "reasons"} and isinstance(r["refer"], bool)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 and rows[0]["ok"] == "True"
    header = open(out / "refuge" / "classification_results.csv").readline().strip()
    assert header == "FileName,Glaucoma Risk"
    assert open(out / "refuge" / "fovea_location_results.csv").readline().strip() == "ImageName,Fovea_X,Fovea_Y"
    _read_as_the_official_refuge_evaluation_does(out / "refuge", [f"{Path(n).stem}.jpg" for n in got])


def _read_as_the_official_refuge_evaluation_does(folder, images):
    """REFUGE's evaluation (ignaciorlando/refuge-evaluation, util/file_management.py) skips the header,
    parses each fovea row's coordinates with ``np.asarray(row[1:], dtype=np.int)`` and each risk with
    ``float``, then looks every image up by name: restated here with ``int`` (``np.int`` is gone)."""
    with open(folder / "fovea_location_results.csv") as f:
        reader = csv.reader(f)
        next(reader)
        fovea = {row[0]: np.asarray(row[1:], dtype=int) for row in reader}
    with open(folder / "classification_results.csv") as f:
        reader = csv.reader(f)
        next(reader)
        risk = {row[0]: float(row[1]) for row in reader}
    for image in images:
        assert fovea[image].shape == (2,) and 0.0 <= risk[image] <= 1.0


def test_refuge_fovea_is_whole_pixels_and_never_missing():
    from fundusrt.runtime.outputs import refuge_fovea

    assert refuge_fovea({"fovea": [329.03, 268.5], "image_size": [512, 512]}) == (329, 268)
    assert refuge_fovea({"fovea": None, "image_size": [1634, 1634]}) == (816, 816)


def test_every_bad_input_gets_its_own_record(tiny_runs, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{inputs / 'good' / 'phantom0.jpg'}\n{tmp_path / 'never_existed.jpg'}\n")
    rc = screen(inputs / "bad", listing, "--bundle", tiny_runs["bundle"], "--out", out, "--batch", "4", "--masks")
    assert rc == 1  # some failed
    got = records(out)
    failed = {
        "zero_bytes.jpg": "empty file",
        "truncated.jpg": "truncated",
        "text.jpg": "not a decodable image",
        "one_pixel.png": "too small",
        "never_existed.jpg": "not found",
    }
    for name, reason in failed.items():
        assert not got[name]["ok"] and name in got[name]["error"] and reason in got[name]["error"], got[name]
        assert "\n" not in got[name]["error"]
    for name in ("grayscale.png", "rgba.png", "sixteen_bit.png", "all_black.png", "no_disc.jpg", "huge_12000x9000.jpg"):
        assert got[name]["ok"], got[name]
    assert got["huge_12000x9000.jpg"]["image_size"] == [12000, 9000]
    assert "no_field_of_view" in got["all_black.png"]["flags"]
    assert got["phantom0.jpg"]["ok"]
    assert len(got) == 12
    err = capsys.readouterr().err
    assert "5 images failed" in err and all(name in err for name in failed)


def test_unwritable_output_folder_is_a_usage_error(tiny_runs, inputs, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = screen(inputs / "good", "--bundle", tiny_runs["bundle"], "--out", blocker / "out")
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write results here" in err[0] and str(blocker) in err[0]


def test_an_existing_run_is_not_overwritten_and_a_torn_line_is_dropped_on_resume(tiny_runs, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert screen(inputs / "good", "--bundle", tiny_runs["bundle"], "--out", out) == 0
    assert screen(inputs / "good", "--bundle", tiny_runs["bundle"], "--out", out) == 2  # would mix two runs
    assert "--resume" in capsys.readouterr().err
    log = out / "results.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0] + lines[1][:40])  # a kill in the middle of the second record
    assert screen(inputs / "good", "--bundle", tiny_runs["bundle"], "--out", out, "--resume") == 0
    done = read_records(log)[0]
    assert sorted(Path(r["path"]).name for r in done) == ["phantom0.jpg", "phantom1.jpg", "phantom2.jpg"]
    assert json.loads(lines[0]) == done[0]  # the finished one was kept, not redone


MANY = 60  # enough that a run is still going when the signal comes (tiny models screen ~50 images/s)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for i in range(MANY):
        cv2.imwrite(str(folder / f"p{i:02d}.png"), bgr(render_phantom(11, i, width=480).image))
    return folder


def test_a_kill_mid_run_loses_nothing_and_resume_finishes(tiny_runs, many, tmp_path):
    folder = many
    out = tmp_path / "out"
    process = start_screen(folder, tiny_runs["bundle"], out, after_records=4)
    log = out / "results.jsonl"
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = read_records(log)[0]
    assert 4 <= len(first) < MANY, "the run should have been killed part way"
    assert all(r["ok"] for r in first)
    rc = main(["screen", str(folder), "--bundle", str(tiny_runs["bundle"]), "--out", str(out), "--resume", "--quiet"])
    assert rc == 0
    final = read_records(log)[0]
    names = [Path(r["path"]).name for r in final]
    assert sorted(names) == [f"p{i:02d}.png" for i in range(MANY)]  # each exactly once
    assert final[: len(first)] == first


def test_ctrl_c_ends_cleanly_with_status_130(tiny_runs, many, tmp_path):
    folder = many
    out = tmp_path / "out"
    process = start_screen(folder, tiny_runs["bundle"], out, after_records=2)
    log = out / "results.jsonl"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume" in err
    done = read_records(log)[0]
    assert len(done) < MANY and os.path.getsize(log) == sum(len(json.dumps(r)) + 1 for r in done)
    assert (out / "results.csv").is_file()


def _result(name: str, ok: bool, p: float = 0.5) -> Result:
    r = Result(path=f"/photos/{name}", ok=ok, image_size=(100, 80))
    if ok:
        r.glaucoma_probability, r.glaucoma, r.fovea = p, p >= 0.5, (40.0, 30.0)
        r.members = {f"member_{i}": p for i in range(5)}
        r.timings_ms = {stage: 1.0 for stage in ("decode", "preprocess", "locate", "segment", "classify")}
    else:
        r.error = f"/photos/{name}: unreadable"
    return r


def test_the_tables_hold_the_latest_record_of_each_image_after_a_retry(tmp_path):
    writer = ResultWriter(tmp_path, refuge=True)
    for name, ok in (("a.jpg", True), ("b.jpg", False), ("c.jpg", True)):
        writer.write(_result(name, ok))
    writer.finish()
    again = ResultWriter(tmp_path, refuge=True, resume=True)
    assert again.done(retry_failed=True) == {identity("/photos/a.jpg"), identity("/photos/c.jpg")}
    again.write(_result("b.jpg", True, p=0.9))  # the retry succeeds
    summary = again.finish({identity("/photos/a.jpg"), identity("/photos/b.jpg")})
    assert (summary.images, summary.screened, summary.errors) == (2, 2, [])
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(Path(r["path"]).name, r["ok"], r["glaucoma_probability"]) for r in rows] == [
        ("a.jpg", "True", "0.5"), ("c.jpg", "True", "0.5"), ("b.jpg", "True", "0.9"),
    ]  # fmt: skip
    risks = (tmp_path / "refuge" / "classification_results.csv").read_text().splitlines()
    assert risks == ["FileName,Glaucoma Risk", "a.jpg,0.5", "c.jpg,0.5", "b.jpg,0.9"]
    assert len(read_records(tmp_path / "results.jsonl")[0]) == 4  # the log keeps every record
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_writer_keeps_no_records_in_memory(tmp_path):
    """What it holds grows by one small index entry per image, not by the records (about 1.5 kB each)."""
    import tracemalloc

    writer = ResultWriter(tmp_path)
    results = [_result(f"photograph_{i:05d}.jpg", True) for i in range(2000)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for r in results:
        writer.write(r)
    held = tracemalloc.get_traced_memory()[0] - before
    summary = writer.finish()
    tracemalloc.stop()
    assert summary.screened == 2000
    assert held / 2000 < 400, f"{held / 2000:.0f} bytes held per image"
