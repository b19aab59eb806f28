"""``fundusrt report DIR``: one offline HTML page for graders to review a screening run.

    DIR/report.html               the page: records embedded as JSON, inline CSS and JavaScript, no
                                  network (opens from file://); a sortable, filterable, paginated
                                  table and a detail view per photograph (``report.html#detail=N``)
    DIR/report_files/thumbs/      small JPEGs of each overlay (else the original) and heatmap

The page reads the latest record of each image in DIR/results.jsonl, tolerating records of older
runs (no ``quality``, ``refer``, ``files``...). Thumbnails already newer than their source are kept,
so re-running on a large folder only makes the new ones. Registering the command imports only the
standard library; OpenCV is imported when it runs.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

PAGE = "report.html"
THUMBS = Path("report_files") / "thumbs"
THUMB_SIZE = 192  # pixels on the long side
# What the page shows of a record; anything else stays in results.jsonl.
FIELDS = (
    "path", "ok", "error", "glaucoma_probability", "glaucoma", "ensemble_probability", "vcdr_probability",
    "members", "vcdr", "disc", "cup", "disc_center", "fovea", "image_size", "flags", "timings_ms", "quality",
    "uncertainty", "uncertain", "refer", "files",
)  # fmt: skip


def register_command(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write DIR/report.html, a page to review a screening run offline",
        description="An offline HTML page of a `fundusrt screen` output folder: a sortable, filterable table "
        "of every photograph (referable and uncertain first) and a detail view of each.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the --out folder of `fundusrt screen`")
    p.add_argument("--page-size", type=int, default=50, help="table rows per page (default 50)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.page_size < 1:
        return _usage("--page-size must be at least 1")
    if not (args.dir / "results.jsonl").is_file():
        return _usage(f"{args.dir / 'results.jsonl'}: no such file; run `fundusrt screen --out {args.dir}` first")
    page = write_review_page(args.dir, page_size=args.page_size)
    print(f"review page: {page}", file=sys.stderr)
    return 0


def _usage(message: str) -> int:
    print(f"fundusrt report: {message}", file=sys.stderr)
    return 2


def latest_records(out_dir: Path) -> list[dict]:
    """The last record of each image in results.jsonl, in the order they were written (as results.csv)."""
    from .inputs import identity
    from .outputs import RESULTS, iter_records

    latest: dict[str, dict] = {}
    for record, _ in iter_records(Path(out_dir) / RESULTS):
        key = identity(str(record.get("path")))
        latest.pop(key, None)  # re-insert: a later record moves to the later place
        latest[key] = record
    return list(latest.values())


def write_review_page(out_dir: Path, *, page_size: int = 50, workers: int | None = None) -> Path:
    """Write ``out_dir/report.html`` (and its thumbnails) from ``out_dir/results.jsonl``; return its path."""
    out_dir = Path(out_dir)
    records = [_page_record(r) for r in latest_records(out_dir)]
    workers = workers or min(8, os.cpu_count() or 1)
    # OpenCV releases the GIL while decoding, so threads make thumbnails of a large folder in parallel.
    with ThreadPoolExecutor(workers) as pool:
        thumbs = list(pool.map(lambda r: _thumbnails(out_dir, r), records))
    for record, (thumb, heat) in zip(records, thumbs):
        record["thumb"], record["heatmap_thumb"] = thumb, heat
    config = {"page_size": page_size, "folder": str(out_dir.resolve()), "written": time.strftime("%Y-%m-%d %H:%M")}
    template = files(__package__).joinpath("review_page.html").read_text(encoding="utf-8")
    text = (
        template.replace("__TITLE__", html.escape(f"fundusrt review: {out_dir.resolve().name}"))
        .replace("__CONFIG__", _script_json(config))
        .replace("__RECORDS__", _script_json(records))
    )
    page = out_dir / PAGE
    tmp = page.with_name(page.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(page)  # a reader never sees half a page
    return page


def _page_record(record: dict) -> dict:
    out = {k: _finite(record.get(k)) for k in FIELDS if k in record}
    path = str(record.get("path") or "")
    out["name"] = os.path.basename(path) or path
    if os.path.isabs(path):
        out["original"] = Path(path).as_uri()  # the detail view links the photograph itself
    return out


def _finite(value):
    """NaN and infinities as null: JSON.parse rejects them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _script_json(value) -> str:
    """JSON safe inside <script>: every '<' escaped, so no '</script>' or '<!--' in a path can end the tag."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def _thumbnails(out_dir: Path, record: dict) -> tuple[str | None, str | None]:
    """Relative paths of the record's thumbnail (overlay, else original photograph) and heatmap thumbnail."""
    side = record.get("files") or {}
    size = record.get("image_size")
    picture = out_dir / side["overlay"] if side.get("overlay") else Path(str(record.get("path") or ""))
    thumb = _thumbnail(out_dir, picture, size)
    heat = _thumbnail(out_dir, out_dir / side["heatmap"], None) if side.get("heatmap") else None
    return thumb, heat


def _thumbnail(out_dir: Path, source: Path, size) -> str | None:
    """Make (or keep, when newer than ``source``) a small JPEG of ``source``; None when it cannot be read."""
    import cv2

    try:
        source_time = source.stat().st_mtime
    except OSError:
        return None
    # Named after the source's full path, so equal file names in different folders do not collide.
    digest = hashlib.sha1(os.path.abspath(source).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    relative = THUMBS / f"{digest}.jpg"
    target = out_dir / relative
    try:
        if target.stat().st_mtime >= source_time:
            return relative.as_posix()
    except OSError:
        pass
    image = cv2.imread(str(source), _reduced_read_flag(size))
    if image is None:
        return None
    h, w = image.shape[:2]
    scale = THUMB_SIZE / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    tmp.write_bytes(encoded.tobytes())
    tmp.replace(target)
    return relative.as_posix()


def _reduced_read_flag(size) -> int:
    """Decode a large photograph at 1/2, 1/4 or 1/8 size (much faster for JPEG) while still over THUMB_SIZE."""
    import cv2

    try:
        long_side = int(max(size))
    except (TypeError, ValueError):  # no size in the record (a failed image, a heatmap): decode it whole
        long_side = 0
    reduced = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}
    for factor, flag in reduced.items():
        if long_side // factor >= THUMB_SIZE:
            return flag
    return cv2.IMREAD_COLOR
