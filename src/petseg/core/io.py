"""Files: atomic writes (a temporary name first, then renamed into place), several outputs written whole or not
at all, CSV and JSON read back, fingerprints."""

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

from petseg.core.errors import PetsegError


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


class Outputs:
    """Several output files written whole-or-nothing: `path(final)` gives a temporary name beside `final` to
    write; `commit()` renames them all into place once every one is written. Until then the files that were
    there stay as they were, and `discard()` (an error, Ctrl-C) removes the temporary files and any folder made
    for them. An output that is one of `inputs` (or another output) is refused before anything is written.
    """

    def __init__(self, inputs=()):
        self.inputs = {os.path.realpath(p) for p in inputs}
        self.pending: list[tuple[Path, Path]] = []
        self.finals: set[str] = set()
        self.made: list[Path] = []

    def reserve(self, final: str | os.PathLike) -> None:
        """Check an output before any work: refuse one that would replace an input, or one already given."""
        real = os.path.realpath(final)
        if real in self.inputs:
            raise PetsegError(f"{final}: is an input of this command; writing there would replace it")
        if real in self.finals:
            raise PetsegError(f"{final}: given as the output of two things; each would overwrite the other")
        if Path(final).is_dir():
            raise PetsegError(f"{final}: is a folder, not an output file")
        self.finals.add(real)

    def path(self, final: str | os.PathLike) -> Path:
        """The temporary name to write `final` to (reserved first, unless it was)."""
        final = Path(final)
        if os.path.realpath(final) not in self.finals:
            self.reserve(final)
        missing = [p for p in [final.parent, *final.parent.parents] if not p.exists()]
        final.parent.mkdir(parents=True, exist_ok=True)
        self.made += reversed(missing)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        self.pending.append((Path(tmp), final))
        return Path(tmp)

    def commit(self) -> list[Path]:
        for tmp, final in self.pending:
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs should be readable like any other file
        for tmp, final in self.pending:
            os.replace(tmp, final)
        done, self.pending, self.made = [final for _, final in self.pending], [], []
        return done

    def discard(self) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)
        for folder in reversed(self.made):  # innermost first; only the folders made here, and only if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.pending, self.made = [], []


@contextlib.contextmanager
def whole_outputs(inputs=()) -> Iterator[Outputs]:
    """An `Outputs` committed when the block succeeds and discarded when it does not."""
    outputs = Outputs(inputs)
    try:
        yield outputs
        outputs.commit()
    finally:
        outputs.discard()


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
