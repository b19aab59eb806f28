from fundusrt.runtime.cli import main
from fundusrt.train.bundle_evaluation import REFUGE_BASELINE, evaluate_bundle, markdown


def test_evaluate_scores_a_bundle_through_the_pipeline(tiny_runs, tmp_path, capsys):
    report = evaluate_bundle(tiny_runs["bundle"], tiny_runs["test"], device="cpu", batch_size=2)
    assert report["images"] == 4 and report["failed"] == 0
    for key in ("od_dice", "oc_dice", "vcdr_mae", "auc", "fovea_distance_px"):
        assert key in report
    assert 0 <= report["od_dice"] <= 1 and 0 <= report["auc"] <= 1
    table = markdown({"fp32": report})
    assert f"{REFUGE_BASELINE['od_dice']:.3f}" in table and "| OD Dice |" in table
    # one member: no spread, so none is uncertain and setting them aside leaves the AUC as it is
    assert report["uncertain"] == 0 and report["auc_certain"] == report["auc"] and "ungradable" in report
    assert [s["set_aside"] for s in report["uncertainty_sweep"]] == [0] * 5
    assert "| spread | set aside | AUC of the rest |" in table

    out = tmp_path / "eval"
    data = f"phantom:{tiny_runs['root'] / 'test'}"
    assert main(["evaluate", str(tiny_runs["bundle"]), "--data", data, "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "evaluation.json").is_file() and "AUC" in (out / "evaluation.md").read_text()


def test_lodo_scores_each_bundle_on_its_held_out_dataset(tiny_runs, tmp_path, capsys):
    held_out = tmp_path / "phantom"  # a bundle named after the dataset it held out
    held_out.symlink_to(tiny_runs["bundle"], target_is_directory=True)
    other = tmp_path / "refuge"
    other.symlink_to(tiny_runs["bundle"], target_is_directory=True)
    data = f"phantom:{tiny_runs['root'] / 'test'}"
    assert main(["evaluate", str(held_out), "--data", data, "--lodo", "--device", "cpu"]) == 0
    assert main(["evaluate", str(held_out), str(other), "--data", data, "--lodo", "--device", "cpu"]) == 2
    assert "no 'refuge' samples" in capsys.readouterr().err


def test_several_backends_are_compared_with_the_first(tiny_runs, tmp_path, capsys):
    import json

    out = tmp_path / "eval"
    data = f"phantom:{tiny_runs['root'] / 'test'}"
    command = ["evaluate", str(tiny_runs["bundle"]), "--data", data, "--out", str(out), "--device", "cpu",
               "--backend", "onnxruntime,openvino", "--precision", "fp32,fp16"]  # fmt: skip
    status = main(command)
    assert "openvino fp16: not run (OpenVINO runs fp32, bf16, int8 on the CPU" in capsys.readouterr().err
    reports = json.loads((out / "evaluation.json").read_text())
    assert list(reports) == ["onnxruntime fp32", "onnxruntime fp16", "openvino fp32"]
    # exit status 1 exactly when a column falls outside the agreement tolerances (the tiny bundle's flat
    # maps may move an FP16 peak by more than a pixel)
    assert status == (1 if reports["onnxruntime fp16"]["agrees"] is False else 0)
    assert "agrees" not in reports["onnxruntime fp32"]
    second = reports["openvino fp32"]
    assert second["agrees"] is True and second["mask_agreement"] >= 0.999 and second["landmark_max_px"] < 0.05
    fp16 = "yes" if reports["onnxruntime fp16"]["agrees"] else "NO"
    row = f"| within 99.5 % / 1 px / 0.01 of the first column | – | {fp16} | yes | – |"
    assert row in (out / "evaluation.md").read_text()


def test_agreement_fails_a_moved_landmark_or_a_changed_answer(tiny_runs):
    from dataclasses import replace

    from fundusrt.runtime.pipeline import Pipeline
    from fundusrt.train.bundle_evaluation import agreement

    with Pipeline.load(tiny_runs["bundle"], backend="onnxruntime", device="cpu") as pipeline:
        results = list(pipeline([str(s.image) for s in tiny_runs["test"]]))
    size = 64  # the tiny locator's input
    assert agreement(results, results, size)["agrees"]
    scale = min(results[0].image_size) / size  # original pixels per locator pixel
    x, y = results[0].disc_center
    moved = [replace(results[0], disc_center=(x + 1.5 * scale, y)), *results[1:]]
    row = agreement(results, moved, size)
    assert not row["agrees"] and 1.4 < row["landmark_max_px"] < 1.6
    changed = [replace(results[0], glaucoma_probability=results[0].glaucoma_probability + 0.02), *results[1:]]
    assert not agreement(results, changed, size)["agrees"]
    flipped = [replace(results[0], glaucoma=not results[0].glaucoma), *results[1:]]
    assert agreement(results, flipped, size)["decisions_changed"] == 1
    lost = [replace(r, fovea=None) for r in results]
    assert agreement(results, lost, size)["landmarks_found_differently"] == sum(r.fovea is not None for r in results)


def test_setting_photographs_aside_rescores_the_rest():
    from fundusrt.train.bundle_evaluation import _auc_kept

    labels, scores = [0, 0, 1, 1], [0.1, 0.9, 0.8, 0.2]  # two ranked wrongly
    assert _auc_kept(labels, scores, [True] * 4) == 0.5
    assert _auc_kept(labels, scores, [True, False, True, False]) == 1.0  # the two wrong ones set aside
    assert _auc_kept(labels, scores, [True, True, False, False]) is None  # one class left
