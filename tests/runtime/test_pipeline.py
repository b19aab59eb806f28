"""The screening pipeline on a real (tiny, barely trained) bundle: every image gets its own record."""

import cv2
import numpy as np
import pytest

from fundusrt.runtime.bundle import load_bundle
from fundusrt.runtime.engines import EngineError, open_engine
from fundusrt.runtime.pipeline import Pipeline
from fundusrt.runtime.result import NO_FIELD_OF_VIEW, Result
from fundusrt.train.phantoms import render_phantom


@pytest.fixture(scope="module")
def pipeline(tiny_runs):
    with Pipeline.load(tiny_runs["bundle"], device="cpu", threads=1) as p:
        yield p


def phantom(index, width=700):
    return render_phantom(5, index, width=width).image


def test_engine_checks_its_inputs(tiny_runs):
    bundle = load_bundle(tiny_runs["bundle"])
    with open_engine(bundle, "locator", backend="onnxruntime", device="cpu") as engine:
        size = engine.inputs[0].shape[-1]
        out = engine.run({"image": np.zeros((2, 3, size, size), np.float32)})
        assert out["distance_map"].shape == (2, 1, size, size)
        with pytest.raises(EngineError, match="shape"):
            engine.run({"image": np.zeros((2, 3, size + 1, size), np.float32)})
        with pytest.raises(EngineError, match="inputs"):
            engine.run({"picture": np.zeros((1, 3, size, size), np.float32)})
        with pytest.raises(EngineError, match="1 to 16"):
            engine.run({"image": np.zeros((17, 3, size, size), np.float32)})
        assert "onnxruntime" in engine.description and "CPU" in engine.description


def test_cuda_without_a_gpu_provider_says_so(tiny_runs):
    bundle = load_bundle(tiny_runs["bundle"])
    with pytest.raises(EngineError, match="cuda"):
        open_engine(bundle, "locator", backend="onnxruntime", device="cuda")


def test_a_result_per_image_in_original_pixels(pipeline):
    images = [phantom(i, width) for i, width in enumerate((640, 900, 1200))]
    results = pipeline(images, batch_size=2)
    assert [r.path for r in results] == ["<array 0>", "<array 1>", "<array 2>"]
    for r, image in zip(results, images):
        h, w = image.shape[:2]
        assert r.ok and r.error is None and r.image_size == (w, h)
        assert 0 <= r.glaucoma_probability <= 1 and r.glaucoma == (r.glaucoma_probability >= 0.5)
        assert set(r.members) == {"crop_gap"}
        assert r.disc_center is not None and 0 <= r.disc_center[0] < w and 0 <= r.disc_center[1] < h
        assert set(r.timings_ms) >= {"decode", "preprocess", "locate", "crop", "segment", "classify"}
        mask = r.refuge_mask()
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 128, 255}
        record = r.to_dict()
        assert record["image_size"] == [w, h] and isinstance(record["flags"], list)


def test_records_carry_quality_uncertainty_and_referral(pipeline):
    results = pipeline([phantom(i) for i in range(3)] + [np.zeros((300, 300, 3), np.uint8)])
    spread = pipeline.bundle.manifest.ensemble.uncertainty
    for r in results:
        assert r.ok and r.quality is not None and 0.0 <= r.quality.score <= 1.0
        assert r.uncertainty == 0.0 and r.uncertain is (r.uncertainty >= spread)  # one member: no spread
        assert r.refer == (r.glaucoma or r.uncertain or not r.quality.gradable)
        assert ("ungradable" in r.flags) == (not r.quality.gradable)
        record = r.to_dict()
        assert record["quality"]["gradable"] == r.quality.gradable and record["refer"] == r.refer
    for r in results[:3]:  # clean phantoms: nothing wrong with the photograph (the tiny model may miss the disc)
        assert set(r.quality.reasons) <= {"disc_not_visible"}
    black = results[3]
    assert not black.quality.gradable and black.refer and "ungradable" in black.flags  # screened all the same


def test_heatmaps_are_drawn_only_when_asked(pipeline):
    images = [phantom(i, 700) for i in range(2)]
    plain = list(pipeline.stream(images))
    drawn = list(pipeline.stream(images, heatmaps=True))
    assert all(not r.heatmaps for r in plain)
    views = set(pipeline.bundle.manifest.ensemble.heatmaps.values())
    assert views == {"crop"}  # the tiny bundle's one member sees the disc crop
    for r in drawn:
        assert set(r.heatmaps) == {"disc"} and r.heatmaps["disc"].shape == (384, 384, 3)
        assert r.to_dict() | {"timings_ms": None} == plain[drawn.index(r)].to_dict() | {"timings_ms": None}


def test_batching_never_mixes_images_up(pipeline, tmp_path):
    # Each image alone, then all together with bad inputs between them: the same answer per image.
    good = [phantom(i, w) for i, w in zip(range(4), (600, 800, 1000, 700))]
    alone = [pipeline([image], batch_size=1)[0].to_dict() for image in good]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    mixed = [good[0], str(empty), good[1], good[2], str(tmp_path / "missing.png"), good[3]]
    together = [r.to_dict() for r in pipeline(mixed, batch_size=3)]
    assert [r["ok"] for r in together] == [True, False, True, True, False, True]
    for expected, got in zip(alone, [together[i] for i in (0, 2, 3, 5)]):
        # batch size may change the last float bits of a convolution, nothing more
        assert got["glaucoma_probability"] == pytest.approx(expected["glaucoma_probability"], abs=1e-4)
        assert got["image_size"] == expected["image_size"] and got["flags"] == expected["flags"]
        for key in ("disc_center", "fovea"):
            assert (got[key] is None) == (expected[key] is None)
            if got[key] is not None:
                assert got[key] == pytest.approx(expected[key], abs=0.05)


def test_an_all_black_image_is_flagged_not_failed(pipeline):
    (r,) = pipeline([np.zeros((600, 800, 3), np.uint8)])
    assert r.ok and NO_FIELD_OF_VIEW in r.flags


def test_a_vanishing_file_fails_alone(pipeline, tmp_path):
    paths = []
    for i in range(6):
        path = tmp_path / f"p{i}.png"
        cv2.imwrite(str(path), phantom(i, 400))
        paths.append(str(path))
    stream = pipeline.stream(paths, batch_size=1)
    first = next(stream)  # batches 0 and 1 are decoded by now; 4 is not
    (tmp_path / "p4.png").unlink()
    rest = list(stream)
    records = [first, *rest]
    assert [r.path for r in records] == paths
    assert [r.ok for r in records] == [True, True, True, True, False, True]
    assert "p4.png" in records[4].error and "not found" in records[4].error


def test_arrays_of_the_wrong_kind_are_refused_by_name(pipeline):
    (r,) = pipeline([np.zeros((100, 100), np.float32)])
    assert not r.ok and "<array 0>" in r.error and "uint8" in r.error
    assert isinstance(r, Result) and r.to_dict()["ok"] is False


def _coordinates(record):
    points = [record[k] for k in ("disc_center", "fovea") if record[k] is not None]
    points += [record[k]["center"] for k in ("disc", "cup") if record[k] is not None]
    return points


def test_every_coordinate_lies_inside_the_image(pipeline):
    # Phantoms cut so that the disc sits on the frame's edge, half of it outside, and a disc-centred
    # framing whose fovea lies beyond the frame: whatever the models say, nothing is reported outside.
    images = []
    for i in range(4):
        p = render_phantom(7, i, width=800)
        x = int(p.truth.disc_center[0])
        images.append(p.image[:, x:] if x < 400 else p.image[:, : x + 1])
        cx, cy = (int(v) for v in p.truth.disc_center)
        r = int(1.2 * p.truth.disc_diameter)
        images.append(p.image[max(cy - r, 0) : cy + r, max(cx - r, 0) : cx + r])
    for result, image in zip(pipeline(images, batch_size=4), images):
        h, w = image.shape[:2]
        assert result.ok, result.error
        for x, y in _coordinates(result.to_dict()):
            assert 0 <= x <= w - 1 and 0 <= y <= h - 1, (result.flags, x, y, w, h)


def test_the_second_crop_follows_the_measured_disc():
    from fundusrt.runtime.ellipse import Ellipse
    from fundusrt.runtime.pipeline import _needs_recrop

    guess = (np.array([100.0, 100.0]), 50.0)
    assert not _needs_recrop(guess, None)
    assert not _needs_recrop(guess, Ellipse((102.0, 101.0), (48.0, 52.0), 0.0))
    assert _needs_recrop(guess, Ellipse((100.0, 100.0), (70.0, 70.0), 0.0))  # larger than guessed
    assert _needs_recrop(guess, Ellipse((100.0, 100.0), (35.0, 35.0), 0.0))  # smaller
    assert _needs_recrop(guess, Ellipse((112.0, 100.0), (50.0, 50.0), 0.0))  # elsewhere


def test_landmarks_beyond_the_frame_are_clamped_or_dropped_and_flagged(pipeline):
    from types import SimpleNamespace

    from fundusrt.runtime import result as flags
    from fundusrt.runtime.ellipse import Ellipse
    from fundusrt.runtime.field_of_view import FieldOfView
    from fundusrt.runtime.geometry import square_transform
    from fundusrt.runtime.pipeline import _Crop
    from fundusrt.runtime.postprocess import DiscCup

    def finish(disc_center, fovea, cup_center=None, looked_at=(1100, 450)):
        r = Result(path="x.jpg", image_size=(1126, 900))
        r.fovea = fovea
        crop = _Crop((np.asarray(looked_at, float), 150.0), square_transform(looked_at, 300, 192), None)
        crop.found = DiscCup(
            Ellipse(disc_center, (120.0, 130.0), 0.0), Ellipse(cup_center or disc_center, (50.0, 60.0), 0.0)
        )
        fov = FieldOfView((563.0, 450.0), 560.0, True, True)  # the disc's 130 px: 0.12 of the field, plausible
        pipeline._finish(SimpleNamespace(result=r, fov=fov), crop, 0.3, [0.3])
        return r

    # a disc centre just beyond the right edge (x = 1130.3 on a 1126-px-wide image): not this photograph's;
    # the record's disc centre is where the disc was looked for, moved onto the edge
    r = finish((1130.3, 450.0), (600.0, 460.0), looked_at=(1131, 450))
    assert r.disc is None and flags.DISC_OUTSIDE_IMAGE in r.flags and flags.DISC_NOT_SEGMENTED in r.flags
    assert 0 <= r.disc_center[0] <= 1125 and flags.LANDMARK_CLAMPED in r.flags
    # a fovea a little beyond the edge is clamped; far beyond, dropped
    r = finish((1000.0, 450.0), (1130.0, 460.0))
    assert r.fovea == (1125.0, 460.0) and flags.LANDMARK_CLAMPED in r.flags and r.vcdr is not None
    r = finish((1000.0, 450.0), (1400.0, 460.0))
    assert r.fovea is None and flags.FOVEA_OUTSIDE_IMAGE in r.flags
    # a cup whose centre falls outside is no cup
    r = finish((1100.0, 450.0), None, cup_center=(1127.0, 450.0))
    assert r.cup is None and r.disc is not None


def test_a_version_1_bundle_screens_as_its_version_3_twin(tiny_runs, tmp_path):
    """The stored version-1 manifest (as export wrote it then), pointed at this bundle's graphs, its
    classifier without the ``heatmaps`` output that version 1 never had."""
    import json
    import shutil
    from pathlib import Path

    import onnx

    from fundusrt.runtime.bundle import sha256

    twin = tmp_path / "v1"
    shutil.copytree(tiny_runs["bundle"], twin)
    current = json.loads((twin / "manifest.json").read_text())
    classifier = current["graphs"]["classifier"]
    for file in classifier["files"].values():
        model = onnx.load(twin / file["path"])
        model.graph.output.remove(next(o for o in model.graph.output if o.name == "heatmaps"))
        onnx.save(model, twin / file["path"])
        file["sha256"] = sha256(twin / file["path"])
    classifier["outputs"] = [t for t in classifier["outputs"] if t["name"] != "heatmaps"]
    old = json.loads((Path(__file__).parent.parent / "fixtures" / "manifest_v1.json").read_text())
    old["max_batch"], old["ensemble"]["members"] = current["max_batch"], current["ensemble"]["members"]
    old["ensemble"]["vcdr"] = current["ensemble"]["vcdr"]
    for name, graph in old["graphs"].items():
        for key in ("inputs", "outputs", "files"):
            graph[key] = current["graphs"][name][key]
        graph["preprocess"]["size"] = current["graphs"][name]["preprocess"]["size"]
    (twin / "manifest.json").write_text(json.dumps(old))
    images = [phantom(i) for i in range(3)]
    original = tiny_runs["bundle"]
    with Pipeline.load(twin, device="cpu", threads=1) as v1, Pipeline.load(original, device="cpu", threads=1) as v3:
        assert v1.bundle.manifest.ensemble.uncertainty is None and v1.bundle.manifest.ensemble.heatmaps == {}
        # what version 1 could not say: uncertainty judged against a threshold, and so the referral
        unjudged = {"timings_ms": None, "uncertain": None, "refer": None}
        old_answers = [r.to_dict() | unjudged for r in v1(images)]
        new_answers = [r.to_dict() | unjudged for r in v3(images)]
    assert old_answers == new_answers and all(a["ok"] for a in old_answers)


def test_a_disc_too_large_for_its_field_is_flagged_and_referred_never_reported(pipeline, monkeypatch):
    from fundusrt.runtime.ellipse import Ellipse
    from fundusrt.runtime.postprocess import DiscCup
    from fundusrt.runtime.result import DISC_SIZE_IMPLAUSIBLE

    image = phantom(0, 700)
    (plain,) = pipeline([image])
    width = plain.image_size[0]
    # a bright lesion taken for the disc: an ellipse wider than a third of the field
    lesion = Ellipse((width / 2, width / 2), (0.45 * width, 0.4 * width), 0.0)
    monkeypatch.setattr(pipeline, "segmentation", lambda planes, affine: DiscCup(lesion, lesion))
    (r,) = pipeline([image])
    assert r.ok and DISC_SIZE_IMPLAUSIBLE in r.flags and r.refer
    assert r.disc is None and r.cup is None and r.vcdr is None  # no measurement read off it
    assert "disc_not_segmented" not in r.flags
