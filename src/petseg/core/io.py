"""Files: atomic writes (a temporary name first, then renamed into place), CSV and JSON read back, fingerprints."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs should be readable like any other file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | os.PathLike, rows: list[dict], fieldnames: list[str] | None = None) -> None:
    """Write rows (dicts with the same keys) as CSV; floats keep their full repr for exact diffs."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames or (list(rows[0]) if rows else []))
        writer.writeheader()
        writer.writerows(rows)


def csv_rows(text: str) -> list[dict]:
    """The rows of a CSV text (a header, then rows) as dicts of strings."""
    return list(csv.DictReader(io.StringIO(text)))


def read_csv(path: str | os.PathLike) -> list[dict]:
    return csv_rows(Path(path).read_text())


def read_history(path: str | os.PathLike) -> list[dict]:
    """A per-epoch CSV written by training (plots/train_MODEL.csv), every value a float."""
    return [{k: float(v) for k, v in row.items()} for row in read_csv(path)]


def fingerprint(settings) -> str:
    """The md5 of `settings` as JSON: equal settings, equal fingerprints (a resumable run, a study's name)."""
    return hashlib.md5(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
