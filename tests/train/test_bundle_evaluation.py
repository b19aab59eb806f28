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
