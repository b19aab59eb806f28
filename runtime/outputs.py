"""Where results go, image by image, so that nothing computed is ever lost.

    OUT/results.jsonl   one JSON record per image, appended and flushed as each finishes
    OUT/results.csv     the same records as a table, written at the end (last record per image)
    OUT/masks/...       REFUGE-coded PNG masks at original size (0 cup, 128 rim, 255 background)
    OUT/overlays/...    disc and cup ellipses, disc centre, fovea and the answers drawn on the photo
    OUT/refuge/         the REFUGE submission layout: segmentation/*.bmp,
                        classification_results.csv, fovea_location_results.csv

Masks and overlays are named after each input's ``name`` (see ``inputs``), so equal file
names in different folders do not collide. A killed run leaves at most one torn last line in
``results.jsonl``; ``resume`` drops it and returns the images already done.
"""

from __future__ import annotations

import csv
import json
import os
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


def read_records(path: Path) -> tuple[list[dict], int]:
    """Valid records of a results file, and the byte length of its valid part (a torn tail excluded)."""
    records, valid = [], 0
    if not path.exists():
        return records, 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # a write cut short by a kill
            try:
                records.append(json.loads(line))
            except ValueError:
                break
            valid += len(line)
    return records, valid


class ResultWriter:
    def __init__(
        self, out: Path, *, names: dict[str, str] | None = None, masks: bool = False, overlays: bool = False,
        refuge: bool = False, resume: bool = False,
    ):  # fmt: skip
        self.out = Path(out)
        self.names = names or {}  # identity -> relative name for side files
        self.masks, self.overlays, self.refuge = masks, overlays, refuge
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            path = self.out / RESULTS
            records, valid = read_records(path)
            if records and not resume:
                raise OutputError(f"{path}: already holds {len(records)} results; add --resume or choose another --out")
            if path.exists() and valid < path.stat().st_size:
                with open(path, "r+b") as f:
                    f.truncate(valid)  # drop the torn last line of a killed run
            self._file = open(path, "a", encoding="utf-8")
        except OSError as e:
            if isinstance(e, OutputError):
                raise
            raise OutputError(f"{self.out}: cannot write results here ({e.strerror or e})") from None
        self.records = records

    def done(self, *, retry_failed: bool = False) -> set[str]:
        """Identities of the inputs that already have a record (successful ones only with ``retry_failed``)."""
        return {identity(r["path"]) for r in self.records if r.get("ok") or not retry_failed}

    def write(self, result: Result) -> None:
        """Side files first (a failure there becomes a flag), then the record, flushed to disk."""
        if result.ok:
            for wanted, kind, write in (
                (self.masks, "mask", self._write_mask),
                (self.overlays, "overlay", self._write_overlay),
                (self.refuge, "refuge_mask", self._write_refuge_mask),
            ):
                if wanted:
                    try:
                        write(result)
                    except (OSError, cv2.error) as e:
                        result.flags.append(f"{kind}_not_written: {e}")
        record = result.to_dict()
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            raise OutputError(f"{self.out / RESULTS}: cannot append ({e.strerror or e})") from None
        self.records.append(record)

    def sync(self) -> None:
        """Push appended records to the disk itself (once per batch: a power cut loses at most one batch)."""
        os.fsync(self._file.fileno())

    def _relative(self, path: str, suffix: str) -> Path:
        return Path(self.names.get(identity(path), Path(path).name)).with_suffix(suffix)

    def _file_name(self, path: str) -> str:
        """The image's file name as the REFUGE tables list it (made unique like its mask's)."""
        return self._relative(path, Path(path).suffix).name

    def _save(self, target: Path, image) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(target), image):
            raise OSError(f"OpenCV could not write {target}")

    def _write_mask(self, result: Result) -> None:
        self._save(self.out / "masks" / self._relative(result.path, ".png"), result.refuge_mask())

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
        self._save(self.out / "overlays" / self._relative(result.path, ".jpg"), picture)

    def finish(self) -> list[dict]:
        """Close the log; write results.csv (and the REFUGE tables) from the last record per image."""
        self._file.close()
        latest = {identity(r["path"]): r for r in self.records}
        records = list(latest.values())
        with open(self.out / "results.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(csv_row(r) for r in records)
        if self.refuge:
            self._write_refuge_tables(records)
        return records

    def _write_refuge_tables(self, records: list[dict]) -> None:
        folder = self.out / "refuge"
        folder.mkdir(parents=True, exist_ok=True)
        ok = [r for r in records if r["ok"]]
        with open(folder / "classification_results.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["FileName", "Glaucoma Risk"])
            writer.writerows([self._file_name(r["path"]), r["glaucoma_probability"]] for r in ok)
        with open(folder / "fovea_location_results.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageName", "Fovea_X", "Fovea_Y"])
            writer.writerows([self._file_name(r["path"]), *refuge_fovea(r)] for r in ok)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
