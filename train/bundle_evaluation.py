"""``fundusrt evaluate BUNDLE --data SPEC``: the REFUGE metrics of a bundle, through the runtime's own
pipeline (what a user deploys), on any dataset with ground truth.

Every image goes through ``Pipeline``; masks are the ellipse masks the runtime writes; metrics are
the official REFUGE definitions (``metrics``): OC/OD Dice, vCDR MAE, AUC, sensitivity at 85 %
specificity, mean fovea distance. Writes JSON and a Markdown table beside REFUGE's published
baseline, so a reader sees both.

Uncertainty: how many photographs the bundle calls uncertain (its members disagree) and the AUC
with those set aside, and the same at other spreads (``uncertainty_sweep``) for choosing the
threshold at export; quality: how many are ungradable.

A bundle that ``fundusrt calibrate`` recalibrated to a site shows its record (the numbers before and
after, and what they did on the calibration sample) beside what the same numbers do on the data
evaluated here (``bundle_calibration.calibration_report``).

With several backends or precisions (``--backend onnxruntime,openvino --precision fp32,bf16``),
each column after a bundle's first also says how far its answers are from that first column's,
image by image, and whether they stay within the task-level tolerances (``AGREEMENT``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fundusrt.runtime.bundle import BundleError
from fundusrt.runtime.engines import EngineError
from fundusrt.runtime.pipeline import Pipeline

from .anatomy import anatomy
from .bundle_calibration import calibration_markdown, calibration_report
from .datasets import load_specs
from .metrics import classification_metrics, fovea_distance, segmentation_metrics
from .tables import markdown_table

# REFUGE's published baseline on its validation set: M-Net trained on ORIGA (Orlando et al. 2020).
REFUGE_BASELINE = {"oc_dice": 0.870, "od_dice": 0.912, "vcdr_mae": 0.049, "auc": 0.963}
SWEEP_SPREADS = (0.05, 0.1, 0.15, 0.2, 0.25)  # members' spreads at which the set-aside AUC is shown


# A configuration agrees with the reference (the first) when, over all images, at least 99.5 % of the
# REFUGE mask pixels are equal, no landmark moves more than 1 px of the locator's input, the same
# landmarks are found, and no glaucoma probability moves more than 0.01.
AGREEMENT = {"mask_agreement": 0.995, "landmark_px": 1.0, "probability": 1e-2}


def evaluate_bundle(
    bundle: Path, samples, *, backend="auto", device="auto", precision="fp32", batch_size=8, threads=None
) -> dict:
    return screen_and_score(bundle, samples, backend=backend, device=device, precision=precision,
                            batch_size=batch_size, threads=threads)[0]  # fmt: skip


def screen_and_score(
    bundle: Path, samples, *, backend="auto", device="auto", precision="fp32", batch_size=8, threads=None
) -> tuple[dict, list]:
    """(report, results): the samples screened by the bundle's pipeline, and their scores."""
    with Pipeline.load(bundle, backend=backend, device=device, precision=precision, threads=threads) as pipeline:
        results = list(pipeline.stream([str(s.image) for s in samples], batch_size=batch_size))
        engines = pipeline.description
        locator_size = pipeline.bundle.graph("locator").preprocess.size
        manifest = pipeline.bundle.manifest
    report = score_results(samples, results) | {
        "bundle": str(bundle), "backend": backend, "precision": precision, "engines": engines,
        "locator_size": locator_size,
    }  # fmt: skip
    calibration = calibration_report(manifest, samples, results)
    if calibration is not None:
        report["calibration"] = calibration
    return report, results


def agreement(reference: list, candidate: list, locator_size: int) -> dict:
    """How far ``candidate``'s results are from ``reference``'s, image by image (see ``AGREEMENT``).
    Landmark shifts are in pixels of the locator's input, taking the photograph's shorter side as
    the field of view's diameter."""
    equal = total = differ = decisions = 0
    shifts, probabilities = [0.0], [0.0]
    for a, b in zip(reference, candidate):
        if not (a.ok and b.ok):
            continue
        mask_a, mask_b = a.refuge_mask(), b.refuge_mask()
        equal += int(np.count_nonzero(mask_a == mask_b))
        total += mask_a.size
        probabilities.append(abs(a.glaucoma_probability - b.glaucoma_probability))
        decisions += a.glaucoma != b.glaucoma
        scale = locator_size / min(a.image_size)
        for point_a, point_b in ((a.disc_center, b.disc_center), (a.fovea, b.fovea)):
            if (point_a is None) != (point_b is None):
                differ += 1
            elif point_a is not None:
                shifts.append(float(np.hypot(*np.subtract(point_a, point_b))) * scale)
    row = {
        "mask_agreement": equal / total if total else 1.0,
        "landmark_max_px": max(shifts),
        "landmarks_found_differently": differ,
        "probability_max_diff": max(probabilities),
        "decisions_changed": decisions,  # shown, not judged: an answer at the threshold flips at any precision
    }
    row["agrees"] = (
        row["mask_agreement"] >= AGREEMENT["mask_agreement"]
        and row["landmark_max_px"] <= AGREEMENT["landmark_px"]
        and differ == 0
        and row["probability_max_diff"] <= AGREEMENT["probability"]
    )
    return row


def score_results(samples, results) -> dict:
    """REFUGE metrics of screening results against the samples' ground truth, plus what a device maker
    asks of the landmarks: the fovea's error as a share of the image width (a fovea not found counts
    as a whole width) and the disc centre's error in disc diameters."""
    masks, truths, labels, scores, fovea_pred, fovea_true = [], [], [], [], [], []
    ensemble_scores, vcdr_scores, fovea_relative, disc_dd, spreads, uncertain = [], [], [], [], [], []
    failed, no_fovea, flagged, ungradable = [], 0, 0, 0
    for sample, result in zip(samples, results):
        if not result.ok:
            failed.append(result.error)
            continue
        flagged += bool(result.flags)
        ungradable += bool(result.quality and not result.quality.gradable)
        width = result.image_size[0]
        anat = anatomy(sample)
        if sample.has_mask:
            masks.append(result.refuge_mask())
            truths.append(sample.load_mask())
        if anat.disc_center is not None and anat.disc_diameter:
            distance = float(np.hypot(*np.subtract(result.disc_center, anat.disc_center)))
            disc_dd.append(distance / anat.disc_diameter)
        if sample.label is not None:
            labels.append(sample.label)
            scores.append(result.glaucoma_probability)
            ensemble_scores.append(result.ensemble_probability)
            vcdr_scores.append(result.vcdr if result.vcdr is not None else 0.0)
            spreads.append(result.uncertainty)
            uncertain.append(bool(result.uncertain))
        if sample.fovea is not None:
            if result.fovea is None:
                no_fovea += 1
                fovea_relative.append(1.0)
            else:
                fovea_pred.append(result.fovea)
                fovea_true.append(sample.fovea)
                fovea_relative.append(float(np.hypot(*np.subtract(result.fovea, sample.fovea))) / width)
    report = {"images": len(samples), "failed": len(failed), "flagged": flagged, "ungradable": ungradable,
              "errors": failed}  # fmt: skip
    if masks:
        report.update(segmentation_metrics(masks, truths))
    if labels and len(set(labels)) == 2:
        report.update(classification_metrics(labels, scores))
        report["auc_ensemble"] = classification_metrics(labels, ensemble_scores)["auc"]
        report["auc_vcdr"] = classification_metrics(labels, vcdr_scores)["auc"]
        report["uncertain"] = int(sum(uncertain))
        report["auc_certain"] = _auc_kept(labels, scores, [not u for u in uncertain])
        report["uncertainty_sweep"] = [
            {"spread": t, "set_aside": int(sum(s >= t for s in spreads)),
             "auc": _auc_kept(labels, scores, [s < t for s in spreads])}
            for t in SWEEP_SPREADS
        ]  # fmt: skip
    if fovea_true:
        report["fovea_distance_px"] = fovea_distance(fovea_pred, fovea_true)
    if fovea_relative:
        report["fovea_not_found"] = no_fovea
        report["fovea_median_of_width"] = float(np.median(fovea_relative))
        report["fovea_within_5pct"] = float(np.mean(np.asarray(fovea_relative) <= 0.05))
    if disc_dd:
        report["disc_max_dd"] = float(np.max(disc_dd))
        report["disc_within_1dd"] = float(np.mean(np.asarray(disc_dd) <= 1.0))
    return report


def _auc_kept(labels, scores, keep) -> float | None:
    """The AUC over the photographs kept (None where one class is left without any)."""
    kept = [(y, s) for y, s, k in zip(labels, scores, keep) if k]
    if len({y for y, _ in kept}) < 2:
        return None
    return classification_metrics([y for y, _ in kept], [s for _, s in kept])["auc"]


METRICS = (
    ("od_dice", "OD Dice", "{:.3f}"),
    ("oc_dice", "OC Dice", "{:.3f}"),
    ("vcdr_mae", "vCDR MAE", "{:.4f}"),
    ("vcdr_bias", "vCDR bias (mean signed error; annotators' cup conventions differ between datasets)", "{:+.4f}"),
    ("auc", "AUC", "{:.3f}"),
    ("auc_ensemble", "AUC, ensemble alone", "{:.3f}"),
    ("auc_vcdr", "AUC, vCDR alone", "{:.3f}"),
    ("uncertain", "uncertain (members disagree: spread at the bundle's threshold or more)", "{}"),
    ("auc_certain", "AUC, uncertain ones set aside", "{:.3f}"),
    ("ungradable", "ungradable photographs (screened all the same)", "{}"),
    ("sensitivity_at_85_specificity", "sensitivity at 85 % specificity", "{:.3f}"),
    ("fovea_distance_px", "fovea distance (px)", "{:.1f}"),
    ("fovea_median_of_width", "fovea error, median (of width)", "{:.2%}"),
    ("fovea_within_5pct", "fovea within 5 % of width", "{:.1%}"),
    ("disc_within_1dd", "disc centre within 1 disc diameter", "{:.1%}"),
    ("mask_agreement", "mask pixels equal to the first column's", "{:.3%}"),
    ("landmark_max_px", "landmark shift from the first column's, max (px at the locator's size)", "{:.3f}"),
    ("landmarks_found_differently", "landmarks found by one and not the other", "{}"),
    ("probability_max_diff", "glaucoma probability's change from the first column's, max", "{:.4f}"),
    ("decisions_changed", "glaucoma decisions that differ from the first column's", "{}"),
    ("agrees", "within 99.5 % / 1 px / 0.01 of the first column", "{}"),
)


def markdown(reports: dict[str, dict]) -> str:
    rows = []
    for key, label, fmt in METRICS:
        if any(key in r for r in reports.values()):
            cells = [_cell(fmt, r[key]) if r.get(key) is not None else None for r in reports.values()]
            rows.append([label, *cells, fmt.format(REFUGE_BASELINE[key]) if key in REFUGE_BASELINE else None])
    counts = [f"{r['images']} / {r['failed']} / {r['flagged']}" for r in reports.values()]
    rows.append(["images / failed / flagged", *counts, ""])
    table = markdown_table(["metric", *reports, "REFUGE baseline (validation)"], rows) + "\n"
    name, first = next(iter(reports.items()))
    if first.get("uncertainty_sweep"):
        sweep = [
            [f"{s['spread']:g}", s["set_aside"], "–" if s["auc"] is None else f"{s['auc']:.3f}"]
            for s in first["uncertainty_sweep"]
        ]  # fmt: skip
        table += (
            f"\nUncertain photographs set aside ({name}): members' spread (standard deviation of their "
            f"probabilities) from which a photograph is set aside, how many are, and the AUC of the rest "
            f"(all: {first['auc']:.3f}).\n\n"
            + markdown_table(["spread", "set aside", "AUC of the rest"], sweep) + "\n"
        )  # fmt: skip
    calibrated = {n: r["calibration"] for n, r in reports.items() if r.get("calibration")}
    for n, calibration in calibrated.items():
        table += "\n" + calibration_markdown(calibration, n if len(reports) > 1 else "")
    return table


def _cell(fmt: str, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return fmt.format(value)


def run_command(args) -> int:
    """``fundusrt evaluate`` (registered in ``cli``)."""
    samples = load_specs(args.data)
    if args.split:
        samples = [s for s in samples if s.split == args.split]
    if not samples:
        print(f"fundusrt evaluate: no samples in {args.data}", file=sys.stderr)
        return 2
    reports = {}
    for bundle in args.bundles:
        chosen = [s for s in samples if s.dataset == bundle.name] if args.lodo else samples
        if not chosen:
            print(f"fundusrt evaluate: no {bundle.name!r} samples in {args.data} (--lodo)", file=sys.stderr)
            return 2
        backends, precisions = args.backend.split(","), args.precision.split(",")
        first = None
        for backend in backends:
            for precision in precisions:
                name = " ".join([bundle.name] * (len(args.bundles) > 1) + [backend] * (len(backends) > 1) + [precision])
                try:
                    report, results = screen_and_score(
                        bundle, chosen, backend=backend, device=args.device, precision=precision, batch_size=args.batch
                    )  # fmt: skip
                except BundleError as e:
                    print(f"fundusrt evaluate: {e}", file=sys.stderr)
                    return 2
                except EngineError as e:  # e.g. bf16 asked of ONNX Runtime: the other columns go on
                    print(f"fundusrt evaluate: {name}: not run ({e})", file=sys.stderr)
                    continue
                if first is None:
                    first = results
                else:
                    report.update(agreement(first, results, report["locator_size"]))
                reports[name] = report
    if not reports:
        return 2
    table = markdown(reports)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "evaluation.json").write_text(json.dumps(reports, indent=2) + "\n")
        (args.out / "evaluation.md").write_text(table)
    disagree = [name for name, r in reports.items() if r.get("agrees") is False]
    if disagree:
        print(f"outside the agreement tolerances: {', '.join(disagree)}", file=sys.stderr)
    return 1 if disagree or any(r["failed"] for r in reports.values()) else 0
