"""Markdown tables for reports and command output, one helper for all of them.

Cells are shown as given (callers format their numbers) and None shows as "–". Written here rather
than taken from ``tabulate``: the GPU check scripts run where only PyTorch is installed, and a
GitHub table is a join per row.
"""

from __future__ import annotations


def markdown_table(headers, rows) -> str:
    def line(cells) -> str:
        return "| " + " | ".join("–" if c is None else str(c).replace("|", "\\|") for c in cells) + " |"

    headers = list(headers)
    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(row) for row in rows)])
