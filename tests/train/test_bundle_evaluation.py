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
