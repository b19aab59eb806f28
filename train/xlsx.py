"""Reading and writing the small spreadsheets that REFUGE and Drishti-GS1 ship (openpyxl)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook, load_workbook

_EPOCH = datetime(2000, 1, 1)


def read_table(path: Path, required: Sequence[str], *, scan_rows: int = 20) -> list[dict]:
    """Rows of the first sheet as dicts keyed by header, the header being the first row
    (among the first ``scan_rows``) that holds every ``required`` column. Empty rows are skipped."""
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = None
        for _, row in zip(range(scan_rows), rows):
            cells = [str(c).strip() if c is not None else "" for c in row]
            if all(name in cells for name in required):
                header = cells
                break
        if header is None:
            raise ValueError(f"{path}: no header row with columns {list(required)}")
        table = []
        for row in rows:
            if row is None or all(c is None or str(c).strip() == "" for c in row):
                continue
            table.append({name: value for name, value in zip(header, row) if name})
        return table
    finally:
        workbook.close()


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Write one sheet; the same rows give the same bytes (fixed timestamps)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Sheet1"
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    workbook.properties.created = workbook.properties.modified = _EPOCH
    buffer = io.BytesIO()
    workbook.save(buffer)
    Path(path).write_bytes(_fixed_zip_times(buffer.getvalue()))


def _fixed_zip_times(data: bytes) -> bytes:
    """openpyxl stamps zip members and core.xml with the current time: rewrite them."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = _fixed_core_times(content)
            dst.writestr(
                zipfile.ZipInfo(item.filename, date_time=_EPOCH.timetuple()[:6]), content, zipfile.ZIP_DEFLATED
            )
    return out.getvalue()


def _fixed_core_times(xml: bytes) -> bytes:
    stamp = _EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>" + stamp + rb"\2", xml)
