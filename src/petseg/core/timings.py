"""Wall-clock times, kept out of git and out of DVC's outputs: they change with every run, load and CPU, and
the outputs must be the same bytes for the same params on one machine (so a rerun leaves `git status` clean).

Each stage that times its work appends one JSON line to a log (`logs/timings.jsonl`, git-ignored) naming
an output it produced by its md5, the hash dvc.lock and `dvc exp show --json` give that output (tune: the
trials CSV; train: the checkpoint; evaluate: the metrics JSON, which exp show lists as a metric); the tools
(compare, report, ablation) find a run's minutes by that hash. A queued experiment runs in a temporary copy
of the project (DVC makes it under PROJECT/.dvc/tmp/exps/) and appends to the project's own log, so its
times outlive the copy. Runs made in another clone have no entry here: their minutes show as unknown.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

LOG = Path("logs/timings.jsonl")
MAX_LOG_BYTES = 64 * 2**20  # read no more of a log than this (about 100,000 runs)


def file_md5(path: str | os.PathLike) -> str:
    """The md5 of a file's bytes, as DVC 3 hashes a file output."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_log(log: str | os.PathLike, cwd: str | os.PathLike | None = None) -> Path:
    """`log`, or where `log` is relative and this is a queued experiment's copy of a project (its folder is
    under PROJECT/.dvc/tmp/exps/), PROJECT/`log`."""
    parts = Path(cwd or os.getcwd()).resolve().parts
    if not Path(log).is_absolute():
        for i in range(len(parts) - 3, 0, -1):
            if parts[i:i + 3] == (".dvc", "tmp", "exps"):
                return Path(*parts[:i]) / log
    return Path(log)


def record(log: str | os.PathLike | None, product: str | os.PathLike, **fields) -> None:
    """Append the time of the work that made `product` (already in place) to `log`; None records nothing."""
    if log is None:
        return
    entry = {"path": str(product), "md5": file_md5(product), **fields}
    log = project_log(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:  # one short line in one write: concurrent appends stay whole lines
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def read_timings(log: str | os.PathLike = LOG) -> dict[str, dict]:
    """{md5: the latest entry for that output}; an absent log gives {} and a damaged line is skipped."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - MAX_LOG_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    found = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("md5"), str):
            found[entry["md5"]] = entry
    return found


def seconds_of(found: dict[str, dict], *md5s: str | None) -> float | None:
    """The seconds of the runs that made the outputs with these md5s, summed; None if any is unknown."""
    entries = [found.get(md5) for md5 in md5s]
    if not entries or any(entry is None or "seconds" not in entry for entry in entries):
        return None
    return sum(entry["seconds"] for entry in entries)
