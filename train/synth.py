"""``fundusrt synth``: write a folder of phantoms in REFUGE's Training400 layout.

    OUT/Training400/{Glaucoma,Non-Glaucoma}/{g,n}0001.jpg
    OUT/Annotation-Training400/Disc_Cup_Masks/{Glaucoma,Non-Glaucoma}/{g,n}0001.bmp   (0 / 128 / 255)
    OUT/Annotation-Training400/Fovea_location.xlsx                                   (ID, ImgName, Fovea_X, Fovea_Y)
    OUT/phantoms.csv                                  (every truth: disc centre, fovea, vCDR, label, ...)

``refuge:OUT`` reads it as REFUGE training data; ``phantom:OUT`` also reads the disc centres.
"""

from __future__ import annotations

import csv
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from fundusrt.runtime.overlay import draw_overlay

from .phantoms import Phantom, render_phantom
from .xlsx import write_table

CSV_NAME = "phantoms.csv"
CSV_COLUMNS = (
    "ImgName", "glaucoma", "eye", "width", "height", "disc_x", "disc_y", "fovea_x", "fovea_y",
    "disc_diameter", "vcdr", "fov_x", "fov_y", "fov_radius", "jpeg_quality", "seed", "index",
)  # fmt: skip
CLASS_FOLDERS = {1: "Glaucoma", 0: "Non-Glaucoma"}


def encode_phantom(seed: int, index: int, width: int | None = None) -> tuple[Phantom, bytes, bytes]:
    """Render one phantom and encode it: (phantom, JPEG bytes, BMP mask bytes)."""
    phantom = render_phantom(seed, index, width=width)
    bgr = cv2.cvtColor(phantom.image, cv2.COLOR_RGB2BGR)
    ok_jpg, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, phantom.truth.jpeg_quality])
    ok_bmp, bmp = cv2.imencode(".bmp", phantom.mask)
    if not (ok_jpg and ok_bmp):
        raise RuntimeError(f"OpenCV could not encode phantom {index}")
    return phantom, jpg.tobytes(), bmp.tobytes()


def _encode_for_pool(args):
    phantom, jpg, bmp = encode_phantom(*args)
    return phantom.truth, jpg, bmp  # pixels stay in the worker; only the encoded bytes travel


def linked_phantoms(out: Path, count: int, *, seed: int, width: int, distinct: int = 40) -> Path:
    """``out/inputs`` holding ``count`` image files that are hard links to ``distinct`` phantoms (rendered
    once, under ``out/phantoms``): many inputs for throughput and memory benchmarks at no rendering cost."""
    sources = Path(out) / "phantoms"
    if not (sources / "phantoms.csv").exists():
        write_phantom_dataset(sources, distinct, seed=seed, width=width)
    originals = sorted(sources.rglob("*.jpg"))
    inputs = Path(out) / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        link = inputs / f"{i:06d}.jpg"
        if not link.exists():
            os.link(originals[i % len(originals)], link)
    return inputs


def write_phantom_dataset(
    out: Path, n: int, *, seed: int = 0, width: int | None = None, jobs: int = 1, progress: bool = False
) -> list[dict]:
    """Write ``n`` phantoms under ``out`` in REFUGE's training layout; return the CSV rows."""
    out = Path(out)
    images = out / "Training400"
    annotations = out / "Annotation-Training400"
    for folder in CLASS_FOLDERS.values():
        (images / folder).mkdir(parents=True, exist_ok=True)
        (annotations / "Disc_Cup_Masks" / folder).mkdir(parents=True, exist_ok=True)

    tasks = [(seed, i, width) for i in range(n)]
    rows, counters = [], {0: 0, 1: 0}
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        results = pool.map(_encode_for_pool, tasks, chunksize=4) if pool else map(_encode_for_pool, tasks)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=n, desc="synth", unit="img")
        for index, (truth, jpg, bmp) in enumerate(results):
            counters[truth.glaucoma] += 1
            stem = f"{'g' if truth.glaucoma else 'n'}{counters[truth.glaucoma]:04d}"
            folder = CLASS_FOLDERS[truth.glaucoma]
            (images / folder / f"{stem}.jpg").write_bytes(jpg)
            (annotations / "Disc_Cup_Masks" / folder / f"{stem}.bmp").write_bytes(bmp)
            rows.append(_csv_row(f"{stem}.jpg", truth, seed, index))
    finally:
        if pool:
            pool.shutdown()

    write_table(
        annotations / "Fovea_location.xlsx",
        ("ID", "ImgName", "Fovea_X", "Fovea_Y"),
        [(i + 1, r["ImgName"], r["fovea_x"], r["fovea_y"]) for i, r in enumerate(rows)],
    )
    with open(out / CSV_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _csv_row(name: str, truth, seed: int, index: int) -> dict:
    t = asdict(truth)
    r2 = lambda v: round(float(v), 2)  # noqa: E731 - coordinates to 1/100 px, as REFUGE's sheets
    return {
        "ImgName": name, "glaucoma": t["glaucoma"], "eye": t["eye"], "width": t["width"], "height": t["height"],
        "disc_x": r2(t["disc_center"][0]), "disc_y": r2(t["disc_center"][1]),
        "fovea_x": r2(t["fovea"][0]), "fovea_y": r2(t["fovea"][1]),
        "disc_diameter": r2(t["disc_diameter"]), "vcdr": round(t["vcdr"], 4),
        "fov_x": r2(t["fov_center"][0]), "fov_y": r2(t["fov_center"][1]), "fov_radius": r2(t["fov_radius"]),
        "jpeg_quality": t["jpeg_quality"], "seed": seed, "index": index,
    }  # fmt: skip


def preview(seed: int, index: int, path: Path, *, height: int = 600) -> None:
    """Write one phantom beside its ground-truth overlay as a PNG, for a person to look at."""
    phantom = render_phantom(seed, index)
    t = phantom.truth
    label = "glaucoma" if t.glaucoma else "normal"
    overlay = draw_overlay(
        phantom.image, mask=phantom.mask, disc_center=t.disc_center, fovea=t.fovea,
        lines=(f"{t.eye}, {label}", f"vCDR {t.vcdr:.2f}"),
    )  # fmt: skip
    scale = height / t.height
    size = (round(t.width * scale), height)
    pair = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in (phantom.image, overlay)]
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(pair), cv2.COLOR_RGB2BGR))


def run_command(args) -> int:
    """``fundusrt synth`` (registered in ``cli``)."""
    if args.n < 1:
        raise SystemExit("fundusrt synth: --n must be at least 1")
    start = time.perf_counter()
    rows = write_phantom_dataset(args.out, args.n, seed=args.seed, width=args.width, jobs=args.jobs, progress=True)
    elapsed = time.perf_counter() - start
    glaucoma = sum(r["glaucoma"] for r in rows)
    print(f"wrote {len(rows)} phantoms ({glaucoma} glaucoma) to {args.out} in {elapsed:.1f} s")
    if args.preview:
        preview(args.seed, 0, args.preview)
        print(f"preview: {args.preview}")
    return 0
