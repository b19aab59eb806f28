"""Where results go, image by image, so that nothing computed is ever lost.

    OUT/results.jsonl   one JSON record per image, appended and flushed as each finishes
    OUT/results.csv     the same records as a table, streamed from results.jsonl at the end (last
                        record per image)
    OUT/masks/...       REFUGE-coded PNG masks at original size (0 cup, 128 rim, 255 background)
    OUT/overlays/...    disc and cup ellipses, disc centre, fovea and the answers drawn on the photo
    OUT/heatmaps/...    the classifier's evidence (class activation maps) over the photograph (NAME.jpg)
                        and over the disc crop (NAME.disc.jpg)
    OUT/refuge/         the REFUGE submission layout: segmentation/*.bmp,
                        classification_results.csv, fovea_location_results.csv

Masks, overlays and heatmaps are named after each input's ``name`` (see ``inputs``), so equal
file names in different folders do not collide; each record's ``files`` lists its own, relative to
OUT (what ``fundusrt report`` shows). A killed run leaves at most one torn last line in
``results.jsonl``; ``resume`` drops it and returns the images already done.

Records are not kept in memory: the writer holds one small entry per image (which line of
results.jsonl is its latest record, and whether it succeeded), and the tables are streamed from
the file, so a run of a million photographs needs no more memory at its end than at its start.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from .inputs import identity
from .overlay import draw_overlay
from .result import CSV_COLUMNS, Result, csv_row

RESULTS = "results.jsonl"


def refuge_fovea(record: dict) -> tuple[int, int]:
    """The fovea as REFUGE's official evaluation reads it: whole pixels (it parses the columns as
    integers), and a row for every image (it looks each image up). A photograph whose fovea was not
    found gets its centre, and its record keeps saying null."""
    if record.get("fovea"):
        x, y = record["fovea"]
    else:
        w, h = record["image_size"]
        x, y = (w - 1) / 2.0, (h - 1) / 2.0
    return int(round(x)), int(round(y))


class OutputError(OSError):
    """The output folder cannot be written: one line naming it and the reason."""


@dataclass
class Summary:
    """What a run's records add up to: images with a record, and the errors of those that failed."""

    images: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, record: dict) -> None:
        self.images += 1
        if not record["ok"]:
            self.errors.append(record["error"])

    @property
    def screened(self) -> int:
        return self.images - len(self.errors)


@contextmanager
def _replacing(path: Path):
    """A text file written beside ``path`` and moved onto it once complete: a kill leaves the old one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        yield f
    tmp.replace(path)


def iter_records(path: Path) -> Iterator[tuple[dict, int]]:
    """The valid records of a results file, one at a time, each with the byte length of the valid part
    up to and including it (reading stops at a torn tail)."""
    if not path.exists():
        return
    valid = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # a write cut short by a kill
            try:
                record = json.loads(line)
            except ValueError:
                return
            valid += len(line)
            yield record, valid


def read_records(path: Path) -> tuple[list[dict], int]:
    """Valid records of a results file, and the byte length of its valid part (a torn tail excluded)."""
    records, valid = [], 0
    for record, end in iter_records(path):
        records.append(record)
        valid = end
    return records, valid


class SideFiles:
    """The files beside the records: masks, overlays and REFUGE's segmentation images, named after each
    input. Written where the image was screened (a Ray worker writes its own, into the shared ``out``)."""

    def __init__(
        self, out: Path, *, names: dict[str, str] | None = None, masks=False, overlays=False, refuge=False,
        heatmaps=False,
    ):  # fmt: skip
        self.out = Path(out)
        self.names = names or {}  # identity -> relative name for side files
        self.masks, self.overlays, self.refuge, self.heatmaps = masks, overlays, refuge, heatmaps

    def write(self, result: Result) -> None:
        """Every side file asked for; one that cannot be written becomes a flag on the result."""
        if not result.ok:
            return
        for wanted, kind, write in (
            (self.masks, "mask", self._write_mask),
            (self.overlays, "overlay", self._write_overlay),
            (self.refuge, "refuge_mask", self._write_refuge_mask),
            (self.heatmaps, "heatmap", self._write_heatmaps),
        ):
            if wanted:
                try:
                    write(result)
                except (OSError, cv2.error) as e:
                    result.flags.append(f"{kind}_not_written: {e}")

    def relative(self, path: str, suffix: str) -> Path:
        return Path(self.names.get(identity(path), Path(path).name)).with_suffix(suffix)

    def _save(self, target: Path, image, result: Result | None = None, kind: str | None = None) -> None:
        """Write ``image`` (RGB or grey) to ``target``; ``kind`` names it in the record's ``files``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(target), image):
            raise OSError(f"OpenCV could not write {target}")
        if kind:
            result.files[kind] = target.relative_to(self.out).as_posix()

    def _write_mask(self, result: Result) -> None:
        self._save(self.out / "masks" / self.relative(result.path, ".png"), result.refuge_mask(), result, "mask")

    def _write_heatmaps(self, result: Result) -> None:
        if not result.heatmaps:
            return  # a bundle from before class activation maps: nothing to draw
        name = self.relative(result.path, ".jpg")
        for view, kind, target in (
            ("photograph", "heatmap", name),
            ("disc", "heatmap_disc", name.with_suffix(".disc.jpg")),
        ):
            if view in result.heatmaps:
                self._save(self.out / "heatmaps" / target, result.heatmaps[view], result, kind)

    def _write_refuge_mask(self, result: Result) -> None:
        self._save(
            self.out / "refuge" / "segmentation" / Path(result.path).with_suffix(".bmp").name, result.refuge_mask()
        )

    def _write_overlay(self, result: Result) -> None:
        if result.image is None:
            raise OSError("the decoded image was not kept")
        lines = [f"glaucoma p = {result.glaucoma_probability:.3f}"]
        lines.append(f"vCDR = {result.vcdr:.3f}" if result.vcdr is not None else "vCDR: no disc")
        lines += [f"flag: {f}" for f in result.flags]
        picture = draw_overlay(
            result.image, disc=result.disc, cup=result.cup, disc_center=result.disc_center,
            fovea=result.fovea, lines=tuple(lines),
        )  # fmt: skip
        self._save(self.out / "overlays" / self.relative(result.path, ".jpg"), picture, result, "overlay")


class ResultWriter:
    """results.jsonl, appended and flushed record by record, and the tables made from it at the end."""

    def __init__(
        self, out: Path, *, names: dict[str, str] | None = None, masks: bool = False, overlays: bool = False,
        refuge: bool = False, resume: bool = False, heatmaps: bool = False,
    ):  # fmt: skip
        self.out = Path(out)
        self.side_files = SideFiles(
            out, names=names, masks=masks, overlays=overlays, refuge=refuge, heatmaps=heatmaps
        )  # fmt: skip
        self.refuge = refuge
        self._latest: dict[str, tuple[int, bool]] = {}  # identity -> (line of its latest record, ok)
        self._lines = 0
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            path = self.out / RESULTS
            valid = 0
            for record, end in iter_records(path):
                self._note(record)
                valid = end
            if self._lines and not resume:
                raise OutputError(f"{path}: already holds {self._lines} results; add --resume or choose another --out")
            if path.exists() and valid < path.stat().st_size:
                with open(path, "r+b") as f:
                    f.truncate(valid)  # drop the torn last line of a killed run
            self._file = open(path, "a", encoding="utf-8")
        except OSError as e:
            if isinstance(e, OutputError):
                raise
            raise OutputError(f"{self.out}: cannot write results here ({e.strerror or e})") from None

    def _note(self, record: dict) -> None:
        self._latest[identity(record["path"])] = (self._lines, bool(record.get("ok")))
        self._lines += 1

    def done(self, *, retry_failed: bool = False) -> set[str]:
        """Identities of the inputs that already have a record (successful ones only with ``retry_failed``)."""
        return {key for key, (_, ok) in self._latest.items() if ok or not retry_failed}

    def write(self, result: Result) -> None:
        """Side files first (a failure there becomes a flag), then the record."""
        self.side_files.write(result)
        self.append(result.to_dict())

    def append(self, record: dict) -> None:
        """One record (``Result.to_dict()``) onto results.jsonl, flushed to the operating system."""
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            raise OutputError(f"{self.out / RESULTS}: cannot append ({e.strerror or e})") from None
        self._note(record)

    def sync(self) -> None:
        """Push appended records to the disk itself (once per batch: a power cut loses at most one batch)."""
        os.fsync(self._file.fileno())

    def _file_name(self, path: str) -> str:
        """The image's file name as the REFUGE tables list it (made unique like its mask's)."""
        return self.side_files.relative(path, Path(path).suffix).name

    def latest(self) -> Iterator[dict]:
        """The latest record of each image, in the order they were written, streamed from results.jsonl."""
        for line, (record, _) in enumerate(iter_records(self.out / RESULTS)):
            if self._latest.get(identity(record["path"]), (None,))[0] == line:
                yield record

    def finish(self, wanted: set[str] | None = None) -> Summary:
        """Close the log; stream results.csv (and the REFUGE tables) from the latest record of each image;
        return the counts of the images in ``wanted`` (identities; default all) and their errors."""
        self._file.close()
        summary = Summary()
        with _replacing(self.out / "results.csv") as table:
            rows = csv.DictWriter(table, fieldnames=CSV_COLUMNS)
            rows.writeheader()
            with self._refuge_tables() as refuge:
                for record in self.latest():
                    rows.writerow(csv_row(record))
                    if record["ok"]:
                        refuge(record)
                    if wanted is None or identity(record["path"]) in wanted:
                        summary.add(record)
        return summary

    @contextmanager
    def _refuge_tables(self):
        """A function adding a processed record to REFUGE's two tables (a no-op without ``refuge``)."""
        if not self.refuge:
            yield lambda record: None
            return
        folder = self.out / "refuge"
        folder.mkdir(parents=True, exist_ok=True)
        with (
            _replacing(folder / "classification_results.csv") as risks,
            _replacing(folder / "fovea_location_results.csv") as foveae,
        ):
            risk_rows, fovea_rows = csv.writer(risks), csv.writer(foveae)
            risk_rows.writerow(["FileName", "Glaucoma Risk"])
            fovea_rows.writerow(["ImageName", "Fovea_X", "Fovea_Y"])

            def add(record: dict) -> None:
                name = self._file_name(record["path"])
                risk_rows.writerow([name, record["glaucoma_probability"]])
                fovea_rows.writerow([name, *refuge_fovea(record)])

            yield add

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
