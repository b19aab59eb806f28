"""``fundusrt evaluate BUNDLE --data SPEC``: the REFUGE metrics of a bundle, through the runtime's own
pipeline (what a user deploys), on any dataset with ground truth.

Every image goes through ``Pipeline``; masks are the ellipse masks the runtime writes; metrics are
the official REFUGE definitions (``metrics``): OC/OD Dice, vCDR MAE, AUC, sensitivity at 85 %
specificity, mean fovea distance. Writes JSON and a Markdown table beside REFUGE's published
baseline, so a reader sees both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from fundusrt.runtime.pipeline import Pipeline

from .anatomy import anatomy
from .datasets import load_specs
from .metrics import classification_metrics, fovea_distance, segmentation_metrics
from .tables import markdown_table

# REFUGE's published baseline on its validation set: M-Net trained on ORIGA (Orlando et al. 2020).
REFUGE_BASELINE = {"oc_dice": 0.870, "od_dice": 0.912, "vcdr_mae": 0.049, "auc": 0.963}


def evaluate_bundle(
    bundle: Path, samples, *, backend="auto", device="auto", precision="fp32", batch_size=8, threads=None
) -> dict:
    with Pipeline.load(bundle, backend=backend, device=device, precision=precision, threads=threads) as pipeline:
        results = list(pipeline.stream([str(s.image) for s in samples], batch_size=batch_size))
        engines = pipeline.description
    return score_results(samples, results) | {"bundle": str(bundle), "precision": precision, "engines": engines}


def score_results(samples, results) -> dict:
    """REFUGE metrics of screening results against the samples' ground truth, plus what a device maker
    asks of the landmarks: the fovea's error as a share of the image width (a fovea not found counts
    as a whole width) and the disc centre's error in disc diameters."""
    masks, truths, labels, scores, fovea_pred, fovea_true = [], [], [], [], [], []
    ensemble_scores, vcdr_scores, fovea_relative, disc_dd = [], [], [], []
    failed, no_fovea, flagged = [], 0, 0
    for sample, result in zip(samples, results):
        if not result.ok:
            failed.append(result.error)
            continue
        flagged += bool(result.flags)
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
        if sample.fovea is not None:
            if result.fovea is None:
                no_fovea += 1
                fovea_relative.append(1.0)
            else:
                fovea_pred.append(result.fovea)
                fovea_true.append(sample.fovea)
                fovea_relative.append(float(np.hypot(*np.subtract(result.fovea, sample.fovea))) / width)
    report = {"images": len(samples), "failed": len(failed), "flagged": flagged, "errors": failed}
    if masks:
        report.update(segmentation_metrics(masks, truths))
    if labels and len(set(labels)) == 2:
        report.update(classification_metrics(labels, scores))
        report["auc_ensemble"] = classification_metrics(labels, ensemble_scores)["auc"]
        report["auc_vcdr"] = classification_metrics(labels, vcdr_scores)["auc"]
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


METRICS = (
    ("od_dice", "OD Dice", "{:.3f}"),
    ("oc_dice", "OC Dice", "{:.3f}"),
    ("vcdr_mae", "vCDR MAE", "{:.4f}"),
    ("auc", "AUC", "{:.3f}"),
    ("auc_ensemble", "AUC, ensemble alone", "{:.3f}"),
    ("auc_vcdr", "AUC, vCDR alone", "{:.3f}"),
    ("sensitivity_at_85_specificity", "sensitivity at 85 % specificity", "{:.3f}"),
    ("fovea_distance_px", "fovea distance (px)", "{:.1f}"),
    ("fovea_median_of_width", "fovea error, median (of width)", "{:.2%}"),
    ("fovea_within_5pct", "fovea within 5 % of width", "{:.1%}"),
    ("disc_within_1dd", "disc centre within 1 disc diameter", "{:.1%}"),
)


def markdown(reports: dict[str, dict]) -> str:
    rows = []
    for key, label, fmt in METRICS:
        if any(key in r for r in reports.values()):
            cells = [fmt.format(r[key]) if key in r else None for r in reports.values()]
            rows.append([label, *cells, fmt.format(REFUGE_BASELINE[key]) if key in REFUGE_BASELINE else None])
    counts = [f"{r['images']} / {r['failed']} / {r['flagged']}" for r in reports.values()]
    rows.append(["images / failed / flagged", *counts, ""])
    return markdown_table(["metric", *reports, "REFUGE baseline (validation)"], rows) + "\n"


def register_command(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="REFUGE metrics of a bundle through the screening pipeline")
    p.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE")
    p.add_argument("--data", required=True, help="dataset SPEC with ground truth, e.g. refuge:/data/REFUGE")
    p.add_argument("--split", default=None, help="only samples of this split (train/validation/test/all)")
    p.add_argument(
        "--lodo", action="store_true",
        help="leave-one-dataset-out: each BUNDLE folder is named after the dataset it held out, "
        "and is scored on that dataset's samples only",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="folder for evaluation.json and evaluation.md")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="one or more, comma-separated (fp32,fp16,int8)")
    p.add_argument("--batch", type=int, default=8)
    p.set_defaults(func=_run)


def _run(args) -> int:
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
        for precision in args.precision.split(","):
            name = f"{bundle.name} {precision}" if len(args.bundles) > 1 else precision
            reports[name] = evaluate_bundle(
                bundle, chosen, backend=args.backend, device=args.device, precision=precision, batch_size=args.batch
            )
    table = markdown(reports)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "evaluation.json").write_text(json.dumps(reports, indent=2) + "\n")
        (args.out / "evaluation.md").write_text(table)
    return 1 if any(r["failed"] for r in reports.values()) else 0
