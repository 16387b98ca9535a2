"""Markdown tables from pandas DataFrames, in the compact form the README and docs hold (no padding, so a
diff shows the values that changed)."""

from __future__ import annotations


def missing(value) -> bool:
    return value is None or value != value  # None, or pandas' NaN (the one value unequal to itself)


def cell(value) -> str:
    """A value as a Markdown cell: blank for None or NaN, `|` escaped."""
    if missing(value):
        return ""
    return str(value).replace("|", "\\|")


def markdown(frame) -> str:
    """`frame` as a Markdown table: a header row, a rule, one row per DataFrame row."""
    lines = ["| " + " | ".join(map(cell, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
