"""``fundusrt report``: the review page's records, thumbnails and command, and the page in a real browser."""

import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from fundusrt.runtime.cli import main
from fundusrt.runtime.review_page import FIELDS, THUMB_SIZE, latest_records, write_review_page

WEIRD = "'q\" </script><!--"  # a folder name that would end a careless <script> (the '/' makes it two folders)


def record(path, **fields) -> dict:
    """A successful record of the current schema; ``fields`` override it."""
    r = {
        "path": str(path), "ok": True, "error": None, "glaucoma_probability": 0.5, "glaucoma": False,
        "ensemble_probability": 0.5, "vcdr_probability": 0.4,
        "members": {"full_gap": 0.5, "crop_gap": 0.6, "crop_2gap": 0.4, "crop_3gap": 0.5, "crop_cc": 0.5},
        "vcdr": 0.45, "disc": {"center": [60.0, 40.0], "axes": [20.0, 22.0], "angle": 5.0, "vertical_diameter": 44.0},
        "cup": {"center": [60.0, 40.0], "axes": [9.0, 10.0], "angle": 3.0, "vertical_diameter": 20.0},
        "disc_center": [60.0, 40.0], "fovea": [30.0, 45.0], "image_size": [120, 90], "flags": [],
        "timings_ms": {"decode": 3.1, "classify": 12.5}, "quality": {"score": 0.9, "gradable": True, "reasons": []},
        "uncertainty": 0.05, "uncertain": False, "refer": False, "files": {},
    }  # fmt: skip
    r.update(fields)
    return r


def failed(path, error="cannot decode image") -> dict:
    keys = ("members", "disc", "cup", "disc_center", "fovea", "image_size", "quality", "uncertainty", "uncertain")
    return {**{k: None for k in keys}, "path": str(path), "ok": False, "error": error, "flags": [], "files": {}}


def picture(path: Path, bgr=(40, 160, 40), size=(120, 90)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((size[1], size[0], 3), bgr, np.uint8))
    return path


def write_results(out: Path, records: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def embedded(page: Path, script_id: str):
    text = page.read_text(encoding="utf-8")
    match = re.search(rf'<script type="application/json" id="{script_id}">(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


@pytest.fixture
def run(tmp_path):
    """A screening output folder: a record superseded by a later one, a photograph without overlay, a record of an
    older run (no quality, refer, uncertain or files), a failed image, and a path that would break a <script>."""
    images, out = tmp_path / "images", tmp_path / "out"
    a, b, c = picture(images / "a.jpg"), picture(images / "b.jpg", size=(1600, 1200)), picture(images / "c.jpg")
    weird = picture(images / WEIRD / "d.jpg")
    bad = images / "bad.jpg"
    bad.write_bytes(b"")
    picture(out / "overlays" / "a.jpg", bgr=(0, 0, 255))  # red: tells an overlay's thumbnail from the photograph's
    picture(out / "heatmaps" / "a.jpg", bgr=(255, 0, 0))
    old = record(c, glaucoma_probability=0.7, glaucoma=True)
    for key in ("quality", "uncertainty", "uncertain", "refer", "files"):
        del old[key]
    records = [
        record(a, glaucoma_probability=0.2),  # superseded below
        record(b, uncertain=True, uncertainty=0.3, image_size=[1600, 1200], flags=["cup_not_segmented"]),
        old,
        failed(bad),
        record(weird, error=None, flags=["</script>"]),
    ]
    files = {"overlay": "overlays/a.jpg", "heatmap": "heatmaps/a.jpg"}
    records.append(record(a, glaucoma_probability=0.9, glaucoma=True, refer=True, files=files))
    write_results(out, records)
    return out, {"a": str(a), "b": str(b), "c": str(c), "bad": str(bad), "weird": str(weird)}, records


def test_the_page_embeds_the_latest_record_of_each_image(run):
    out, paths, records = run
    page = write_review_page(out)
    assert page == out / "report.html" and page.is_file()
    text = page.read_text(encoding="utf-8")
    assert text.count("</script>") == 3  # the page's own three: none from the data
    assert "http://" not in text and "https://" not in text  # nothing from the network
    shown = embedded(page, "records")
    assert [r["path"] for r in shown] == [paths[k] for k in ("b", "c", "bad", "weird", "a")]  # a's later record
    by_path = {r["path"]: r for r in shown}
    for original in records[1:]:
        assert {k: by_path[original["path"]][k] for k in FIELDS if k in original} == original
        assert by_path[original["path"]]["name"] == Path(original["path"]).name
    assert "refer" not in by_path[paths["c"]]  # an older run's record stays as it was
    assert embedded(page, "config")["page_size"] == 50


def test_thumbnails_of_overlays_else_photographs(run):
    out, paths, _ = run
    shown = {r["path"]: r for r in embedded(write_review_page(out), "records")}
    a = cv2.imread(str(out / shown[paths["a"]]["thumb"]))
    assert a.shape[:2] == (90, 120) and a[..., 2].mean() > 200  # the (red) overlay, small enough already
    assert cv2.imread(str(out / shown[paths["a"]]["heatmap_thumb"]))[..., 0].mean() > 200
    b = cv2.imread(str(out / shown[paths["b"]]["thumb"]))  # no overlay: the photograph, made small
    assert max(b.shape[:2]) == THUMB_SIZE and b[..., 1].mean() > 120
    assert cv2.imread(str(out / shown[paths["weird"]]["thumb"])) is not None
    assert shown[paths["bad"]]["thumb"] is None and shown[paths["bad"]]["heatmap_thumb"] is None
    assert shown[paths["b"]]["heatmap_thumb"] is None
    assert not list((out / "report_files" / "thumbs").glob("*.tmp"))


def test_thumbnails_up_to_date_are_kept(run):
    out, paths, _ = run
    write_review_page(out)
    thumbs = {p: p.stat().st_mtime_ns for p in (out / "report_files" / "thumbs").iterdir()}
    assert len(thumbs) == 5  # a's overlay and heatmap, b, c, weird
    overlay = out / "overlays" / "a.jpg"
    later = overlay.stat().st_mtime + 10
    os.utime(overlay, (later, later))  # the overlay was redrawn
    shown = {r["path"]: r for r in embedded(write_review_page(out), "records")}
    remade = out / shown[paths["a"]]["thumb"]
    assert remade.stat().st_mtime_ns != thumbs[remade]
    assert all(p.stat().st_mtime_ns == t for p, t in thumbs.items() if p != remade)


def test_infinite_and_nan_numbers_become_null(tmp_path):
    write_results(tmp_path, [record("/nowhere/x.jpg")])
    text = (tmp_path / "results.jsonl").read_text().replace('"uncertainty": 0.05', '"uncertainty": NaN')
    (tmp_path / "results.jsonl").write_text(text)
    assert math.isnan(latest_records(tmp_path)[0]["uncertainty"])
    assert embedded(write_review_page(tmp_path), "records")[0]["uncertainty"] is None


def test_the_command_writes_the_page(run, capsys):
    out, _, _ = run
    assert main(["report", str(out), "--page-size", "7"]) == 0
    assert str(out / "report.html") in capsys.readouterr().err
    assert embedded(out / "report.html", "config")["page_size"] == 7


def test_a_folder_without_results_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.jsonl" in err and not (tmp_path / "report.html").exists()


# ---- the page in a real browser: headless Chromium renders it and its JavaScript runs

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "headless_shell")


@pytest.fixture(scope="module")
def browser():
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("no Chromium installed: apt-get install chromium")
    return found


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """120 records with overlays (a heatmap on every third), a few referable, uncertain or failed."""
    out = tmp_path_factory.mktemp("big") / "out"
    records = []
    for i in range(120):
        picture(out / "overlays" / f"img{i}.jpg", bgr=(40, 40 + i, 200 - i), size=(96, 72))
        files = {"overlay": f"overlays/img{i}.jpg"}
        if i % 3 == 0:
            picture(out / "heatmaps" / f"img{i}.jpg", bgr=(200, 0, i), size=(96, 72))
            files["heatmap"] = f"heatmaps/img{i}.jpg"
        p = (i * 37 % 100) / 100
        records.append(
            failed(f"/data/img{i}.jpg")
            if i % 40 == 7
            else record(f"/data/img{i}.jpg", glaucoma_probability=p, refer=p > 0.8, uncertain=i % 11 == 0, files=files)
        )
    write_results(out, records)
    return out, write_review_page(out, page_size=50)


class Elements(HTMLParser):
    """Start tags of a document as (tag, attributes) in order, and the text inside the element with an id."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.text, self._open = [], {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag not in ("img", "input", "br", "meta"):
            self._open.append(attrs.get("id"))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for name in filter(None, self._open):
            self.text[name] = self.text.get(name, "") + data

    def by(self, tag: str, cls: str):
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]


def chromium(browser, url: str, tmp_path: Path, *flags: str) -> str:
    out = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
            f"--user-data-dir={tmp_path / 'profile'}", *flags, url,
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_browser_renders_one_page_of_rows_referable_first(browser, big_run, tmp_path):
    out, page = big_run
    records = embedded(page, "records")
    dom = Elements(chromium(browser, page.as_uri(), tmp_path, "--dump-dom"))
    rows = dom.by("tr", "record")
    assert len(rows) == 50

    def default_order(i):  # referable, then uncertain, then probability, high first; missing values last
        r = records[i]
        first = {True: 0, False: 1, None: 2}
        p = r.get("glaucoma_probability")
        return first[r.get("refer")], first[r.get("uncertain")], p is None, -(p or 0), i

    order = sorted(range(len(records)), key=default_order)
    assert [int(r["data-index"]) for r in rows] == order[:50]
    assert records[int(rows[0]["data-index"])]["refer"] is True
    thumbs = dom.by("img", "thumb")
    expected = [src for i in order[:50] for src in (records[i]["thumb"], records[i]["heatmap_thumb"]) if src]
    assert [t["src"] for t in thumbs] == expected and all(t["loading"] == "lazy" for t in thumbs)
    assert all((out / src).is_file() for src in expected)
    assert "120" in dom.text["counts"] and "of 3" in dom.text["pages"]


def test_the_detail_view_shows_every_field(browser, big_run, tmp_path):
    _, page = big_run
    dom = Elements(chromium(browser, page.as_uri() + "#detail=0", tmp_path, "--dump-dom"))
    detail = next(a for t, a in dom.tags if a.get("id") == "detail")
    assert "hidden" not in detail
    assert dom.text["detail-title"].strip() == "img0.jpg"
    body = dom.text["detail-body"]
    for shown in ("/data/img0.jpg", "crop_3gap", "classify", "vertical_diameter", "fovea", "gradable"):
        assert shown in body
    assert {"overlays/img0.jpg", "heatmaps/img0.jpg"} <= {a["src"] for t, a in dom.tags if t == "img"}


def test_a_screenshot_of_the_page(browser, big_run, tmp_path):
    _, page = big_run
    png = tmp_path / "review.png"
    chromium(browser, page.as_uri(), tmp_path, f"--screenshot={png}", "--window-size=1400,900")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
