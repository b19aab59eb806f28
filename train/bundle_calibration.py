"""``fundusrt calibrate BUNDLE --data SPEC --out BUNDLE2``: a bundle recalibrated to one site.

The site's labelled photographs go through the bundle's own ``Pipeline`` (what the site deploys);
``site_calibration`` refits the ensemble's numbers from the results (vCDR weight, decision threshold
at a stated specificity, uncertainty threshold); a new bundle folder is written: a copy of the old
without its ``engines/`` (a cache, rebuilt by ``fundusrt build-engines``), whose manifest carries the
new numbers and a ``calibration`` record of how they were fitted: the data, the counts, the date,
the numbers before and after and the sample's AUC, sensitivity and specificity under each. The
graphs are the same files, so their hashes still verify.

``fundusrt evaluate`` of a calibrated bundle shows the record beside the same numbers on the data it
evaluates, scored under the numbers before and after (``calibration_report``), so a calibration is
judged on other photographs than those it was fitted on.

Quality limits live in ``runtime/quality.py``, not in the bundle, so ``--quality`` only reports the
sample's ungradable photographs; nothing about quality is refitted or recorded.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from fundusrt.runtime.bundle import BundleError, Calibration, Manifest, load_bundle, sha256, write_manifest
from fundusrt.runtime.engines import EngineError
from fundusrt.runtime.pipeline import Pipeline

from .site_calibration import (
    DEFAULT_SPECIFICITY,
    DEFAULT_UNCERTAIN_SHARE,
    METHOD,
    CalibrationError,
    SiteSample,
    calibrate_ensemble,
    ensemble_before,
    operating_point,
)
from .tables import markdown_table


def calibrate_bundle(
    bundle: Path,
    samples,
    out: Path,
    *,
    data: str,
    specificity: float = DEFAULT_SPECIFICITY,
    uncertain_share: float | None = DEFAULT_UNCERTAIN_SHARE,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 8,
    threads: int | None = None,
) -> tuple[Manifest, list]:
    """(the new bundle's manifest, the screening results of ``samples``); the new bundle is at ``out``."""
    bundle, out = Path(bundle), Path(out)
    if out.exists():
        raise CalibrationError(f"{out}: already exists (calibrate writes a new bundle folder)")
    if out.resolve().is_relative_to(bundle.resolve()):
        raise CalibrationError(f"{out}: must lie outside the bundle {bundle}")
    with Pipeline.load(bundle, backend=backend, device=device, precision=precision, threads=threads) as pipeline:
        results = list(pipeline.stream([str(s.image) for s in samples], batch_size=batch_size))
        manifest = pipeline.bundle.manifest
    site = SiteSample.of(samples, results)
    fitted = calibrate_ensemble(manifest.ensemble, site, specificity=specificity, uncertain_share=uncertain_share)
    calibration = Calibration(
        data=data,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        from_manifest=sha256(bundle / "manifest.json"),
        precision=precision,
        photographs=len(site),
        glaucoma=site.glaucoma,
        without_vcdr=site.without_vcdr,
        failed=sum(not r.ok for r in results),
        specificity=specificity,
        uncertain_share=uncertain_share,
        method=METHOD,
        before=operating_point(site, manifest.ensemble),
        after=operating_point(site, fitted),
    )
    calibrated = replace(manifest, ensemble=fitted, engines=(), calibration=calibration)
    _write_copy(bundle, out, calibrated)
    return calibrated, results


def _write_copy(bundle: Path, out: Path, manifest: Manifest) -> None:
    """``bundle`` copied to ``out`` without ``engines/``, with ``manifest``; checked by loading it."""
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    top = bundle.resolve()

    def engines(folder, names):
        return {"engines"} & set(names) if Path(folder).resolve() == top else set()

    shutil.copytree(bundle, partial, ignore=engines)
    write_manifest(partial, manifest)
    load_bundle(partial)  # the graphs' hashes, and the manifest read back
    partial.rename(out)


# ---------------------------------------------------------------------------- reading it back


def calibration_report(manifest: Manifest, samples, results) -> dict | None:
    """A calibrated bundle's record, and the same numbers on ``samples`` under its numbers before and
    after (``here``; None where the samples lack a class); None for a bundle never calibrated."""
    calibration = manifest.calibration
    if calibration is None:
        return None
    site = SiteSample.of(samples, results)
    here = None
    if 0 < site.glaucoma < len(site):
        before = operating_point(site, ensemble_before(manifest.ensemble, calibration.before))
        here = {"before": asdict(before), "after": asdict(operating_point(site, manifest.ensemble))}
    e = manifest.ensemble
    now = (e.threshold, None if e.vcdr is None else e.vcdr.weight, e.uncertainty)
    after = calibration.after
    changed = now != (after.threshold, after.vcdr_weight, after.uncertainty)  # edited by hand since
    return {"recorded": asdict(calibration), "here": here, "changed_since": changed}


_ROWS = (
    ("threshold", "decision threshold", "{:.4f}"),
    ("vcdr_weight", "vCDR weight", "{:.2f}"),
    ("uncertainty", "uncertainty threshold (members' spread)", "{:.4f}"),
)
_SCORES = (
    ("auc", "AUC", "{:.3f}"),
    ("sensitivity", "sensitivity at the threshold", "{:.3f}"),
    ("specificity", "specificity at the threshold", "{:.3f}"),
    ("uncertain", "uncertain", "{}"),
)


def calibration_markdown(report: dict, name: str = "") -> str:
    """The before/after table of ``calibration_report`` (or of a fresh calibration: ``here`` None)."""
    c = report["recorded"]
    before, after = c["before"], c["after"]
    sample = f"{c['photographs']} photographs"

    def cells(a: dict, b: dict, key: str, fmt: str) -> list:
        return [None if x.get(key) is None else fmt.format(x[key]) for x in (a, b)]

    rows = [[label, *cells(before, after, key, fmt)] for key, label, fmt in _ROWS]
    rows += [[f"{label}, calibration sample ({sample})", *cells(before, after, k, fmt)] for k, label, fmt in _SCORES]
    here = report.get("here")
    if here:
        rows += [[f"{label}, this data", *cells(here["before"], here["after"], k, fmt)] for k, label, fmt in _SCORES]
    heading = (
        f"Calibration{f' of {name}' if name else ''}: fitted on {c['data']} ({c['photographs']} photographs, "
        f"{c['glaucoma']} glaucoma, {c['without_vcdr']} without a vCDR; {c['precision']}) on {c['date']}, "
        f"threshold at {c['specificity']:.0%} specificity. The calibration sample's figures are measured on the "
        "photographs the numbers were fitted on (optimistic)"
        + ("; this data's are the same screening scored under the numbers before and after." if here else ".")
    )
    if report.get("changed_since"):
        heading += " The bundle's numbers have changed since: 'after' on this data uses the bundle's present ones."
    return heading + "\n\n" + markdown_table(["", "before", "after"], rows) + "\n"


def _quality_hook(results) -> None:
    """``--quality``: quality limits are not in the bundle (``runtime/quality.py`` holds them), so this
    says what the sample shows and refits nothing."""
    graded = [r.quality for r in results if r.ok and r.quality is not None]
    ungradable = [q for q in graded if not q.gradable]
    reasons = Counter(reason for q in ungradable for reason in q.reasons)
    listed = ", ".join(f"{reason} {n}" for reason, n in reasons.most_common()) or "none"
    print(f"quality: not calibrated (the bundle carries no quality limits; runtime/quality.py holds them); "
          f"{len(ungradable)} of {len(graded)} photographs ungradable ({listed})")  # fmt: skip


def run_command(args) -> int:
    """``fundusrt calibrate`` (registered in ``cli``)."""
    from .datasets import load_specs

    samples = load_specs(args.data)
    if args.split:
        samples = [s for s in samples if s.split == args.split]
    samples = [s for s in samples if s.label is not None]
    if not samples:
        print(f"fundusrt calibrate: no labelled samples in {args.data}", file=sys.stderr)
        return 2
    share = None if args.uncertain_share == 0 else args.uncertain_share
    try:
        manifest, results = calibrate_bundle(
            args.bundle, samples, args.out, data=args.data, specificity=args.specificity, uncertain_share=share,
            backend=args.backend, device=args.device, precision=args.precision, batch_size=args.batch,
        )  # fmt: skip
    except (BundleError, EngineError, CalibrationError) as e:
        print(f"fundusrt calibrate: {e}", file=sys.stderr)
        return 2
    for r in results:
        if not r.ok:
            print(f"not screened: {r.path}: {r.error}", file=sys.stderr)
    print(calibration_markdown({"recorded": asdict(manifest.calibration)}, str(args.bundle)))
    if args.quality:
        _quality_hook(results)
    print(f"wrote {args.out}; judge it on other photographs of the site: fundusrt evaluate {args.out} --data SPEC")
    if load_bundle(args.bundle, verify=False).manifest.engines:
        print(f"engines/ not copied: fundusrt build-engines {args.out}")
    return 0
