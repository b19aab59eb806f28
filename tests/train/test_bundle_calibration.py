"""``fundusrt calibrate``: a site's photographs refit a bundle's numbers into a new bundle, which
verifies, records how, answers as recorded, and shows before/after in ``fundusrt evaluate``."""

import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from conftest import engine_entry

from fundusrt.runtime.bundle import load_bundle, sha256, write_manifest
from fundusrt.runtime.cli import main
from fundusrt.runtime.pipeline import Pipeline
from fundusrt.train.bundle_calibration import calibrate_bundle
from fundusrt.train.datasets import load_specs, write_table
from fundusrt.train.site_calibration import SiteSample, operating_point
from fundusrt.train.synth import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[2]
ACRIMA = Path(os.environ.get("FUNDUSRT_REALDATA", ROOT.parent / "shared" / "realdata")) / "ACRIMA"


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _graphs_and_manifest(files: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in files.items() if not k.startswith("engines/")}


def test_calibrate_writes_a_bundle_that_verifies_records_and_answers_as_recorded(tiny_runs, tmp_path, capsys):
    source = Path(shutil.copytree(tiny_runs["bundle"], tmp_path / "bundle"))
    engine = source / "engines" / "key" / "locator.engine"  # a stand-in for a built engine: not copied
    engine.parent.mkdir(parents=True)
    engine.write_bytes(b"engine")
    entry = engine_entry("locator", "key", "engines/key/locator.engine", sha256(engine))
    write_manifest(source, replace(load_bundle(source).manifest, engines=(entry,)))
    before_files = _files(source)
    write_phantom_dataset(tmp_path / "site", 12, seed=5, width=560)
    spec = f"phantom:{tmp_path / 'site'}"
    samples = load_specs(spec)
    out = tmp_path / "calibrated"

    assert main(["calibrate", str(source), "--data", spec, "--out", str(out), "--specificity", "0.8",
                 "--quality"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| decision threshold |" in printed and "quality: not calibrated" in printed
    # the source bundle is left as it was (screening may add to its engines/ cache: OpenVINO's blobs)
    assert _graphs_and_manifest(_files(source)) == _graphs_and_manifest(before_files)

    calibrated, original = load_bundle(out).manifest, load_bundle(source).manifest  # hashes verify
    assert not (out / "engines").exists() and calibrated.engines == ()
    copied = _graphs_and_manifest(before_files)
    assert {k: v for k, v in _files(out).items() if k != "manifest.json"} == {k: v for k, v in copied.items()
                                                                             if k != "manifest.json"}  # fmt: skip
    # nothing but the ensemble's numbers and the record changed
    assert original.engines and replace(calibrated, ensemble=original.ensemble, calibration=None) == replace(
        original, engines=()
    )
    assert replace(calibrated.ensemble, threshold=0, vcdr=None, uncertainty=None) == replace(
        original.ensemble, threshold=0, vcdr=None, uncertainty=None
    )
    c = calibrated.calibration
    assert (c.data, c.photographs, c.glaucoma, c.failed, c.specificity) == (
        spec, len(samples), sum(s.label for s in samples), 0, 0.8
    )  # fmt: skip
    assert c.from_manifest == before_files["manifest.json"] and c.date[:2] == "20"
    assert c.before.threshold == original.ensemble.threshold and c.after.threshold == calibrated.ensemble.threshold
    assert c.after.specificity >= 0.8
    assert json.loads((out / "manifest.json").read_text())["calibration"]["after"] == asdict(c.after)

    # the new bundle, screening the same photographs, answers what the record says
    with Pipeline.load(out) as pipeline:
        results = pipeline([str(s.image) for s in samples])
    assert operating_point(SiteSample.of(samples, results), calibrated.ensemble) == c.after
    normal = [r for s, r in zip(samples, results) if s.label == 0]
    assert sum(not r.glaucoma for r in normal) / len(normal) >= 0.8

    # evaluate shows the record and the data it evaluates, before and after
    test = f"phantom:{tiny_runs['root'] / 'test'}"
    assert main(["evaluate", str(out), "--data", test, "--out", str(tmp_path / "eval")]) in (0, 1)
    printed = capsys.readouterr().out
    assert "Calibration: fitted on " + spec in printed and "| before | after |" in printed
    assert "this data" in printed
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["fp32"]
    assert report["calibration"]["recorded"]["after"] == asdict(c.after)
    assert report["calibration"]["here"]["after"]["auc"] == pytest.approx(report["auc"])

    # a bundle never calibrated shows none; an existing folder is not overwritten
    assert main(["evaluate", str(source), "--data", test]) in (0, 1)
    assert "Calibration" not in capsys.readouterr().out
    assert main(["calibrate", str(source), "--data", spec, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.skipif(not (ACRIMA / "Images").is_dir(), reason=f"no ACRIMA photographs at {ACRIMA}")
def test_calibrating_on_part_of_acrima_and_judging_on_another(tiny_runs, tmp_path, capsys):
    """A site's sample (ACRIMA, another camera's disc crops) calibrates the tiny bundle; the threshold
    meets the specificity on that sample and evaluate shows before/after on other photographs. (A
    random split of ACRIMA may put both eyes of a person on both sides.)"""
    acrima = load_specs(f"acrima:{ACRIMA}")
    normal, glaucoma = [s for s in acrima if s.label == 0], [s for s in acrima if s.label == 1]
    fit = write_table(normal[::20][:15] + glaucoma[::20][:15], tmp_path / "site.csv")
    judge = write_table(normal[10::20][:10] + glaucoma[10::20][:10], tmp_path / "judge.csv")
    samples = load_specs(f"csv:{fit}")
    out = tmp_path / "calibrated"

    manifest, results = calibrate_bundle(tiny_runs["bundle"], samples, out, data=f"csv:{fit}", specificity=0.85)
    assert load_bundle(out).manifest == manifest  # written as returned, and its hashes verify
    c = manifest.calibration
    assert (c.photographs + c.failed, c.glaucoma + c.failed) >= (30, 15) and c.photographs >= 25
    # the runtime's own answer under the new numbers, photograph by photograph
    ensemble = manifest.ensemble
    called = {
        r.path: (ensemble.vcdr.combine(r.ensemble_probability, r.vcdr) if ensemble.vcdr else r.ensemble_probability)
        >= ensemble.threshold
        for r in results
        if r.ok
    }
    normal_called = [called[str(s.image)] for s in samples if s.label == 0 and str(s.image) in called]
    assert 1 - sum(normal_called) / len(normal_called) >= 0.85
    assert c.after.specificity == pytest.approx(1 - sum(normal_called) / len(normal_called))

    assert main(["evaluate", str(out), "--data", f"csv:{judge}"]) in (0, 1)
    printed = capsys.readouterr().out
    assert f"fitted on csv:{fit} ({c.photographs} photographs, {c.glaucoma} glaucoma" in printed
    assert "AUC, this data" in printed and "| before | after |" in printed
