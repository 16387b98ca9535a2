"""Preprocessing: every pair of each split decoded, resized and stacked into uint8 arrays once."""

from __future__ import annotations

import signal
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from petseg.core.errors import PetsegError
from petseg.core.io import whole_outputs, write_csv
from petseg.core.progress import note, progress
from petseg.data.arrays import save_array
from petseg.data.decode import BadFile, load_pair
from petseg.data.splits import official_splits, pair_paths


def _default_stop_signals() -> None:
    """Pool initializer: SIGTERM and SIGHUP end a worker at once, as by default. The command's handler, inherited
    through fork, runs only between bytecodes: a SIGTERM from Pool.terminate() just before the worker blocks on
    the task queue's lock was otherwise lost, and the command waited for that worker forever."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _load(job):
    """Pool worker: one pair, or the reason it was skipped."""
    raw_dir, stem, size, min_side, max_pixels = job
    try:
        return stem, load_pair(*pair_paths(raw_dir, stem), size, min_side, max_pixels), None
    except BadFile as err:
        return stem, None, str(err)


def preprocess(raw_dir: Path, out_dir: Path, image_size: int, valid_fraction: float, seed: int,
               on_bad_file: str = "skip", min_side: int = 1, max_pixels: int = 200_000_000,
               workers: int = 1) -> dict[str, int]:
    """Write {split}_images.npy (N,H,W,3), {split}_masks.npy (N,H,W), manifest.csv and skipped.csv.

    The split is made from the list files first, then bad pairs are dropped from their split, so
    fixing a file never moves another. Returns the counts per split and of skipped pairs.
    """
    out_dir, splits = Path(out_dir), official_splits(raw_dir, valid_fraction, seed)
    manifest, skipped, counts = [], [], {}
    # whole or nothing: the arrays and tables are renamed into place together at the end, so an error or
    # Ctrl-C never leaves new arrays of one split beside old ones of another
    with whole_outputs() as outputs, Pool(workers, _default_stop_signals) if workers > 1 else _Serial() as pool:
        for split, stems in splits.items():
            images, masks = [], []
            jobs = [(raw_dir, stem, image_size, min_side, max_pixels) for stem in stems]
            for stem, pair, reason in progress(pool.imap(_load, jobs, chunksize=8), split, len(jobs), "photo"):
                if reason is not None:
                    if on_bad_file == "fail":
                        raise BadFile(reason)
                    note(f"skipped {reason}")
                    skipped.append({"stem": stem, "split": split, "reason": reason})
                    continue
                images.append(pair[0])
                masks.append(pair[1])
                manifest.append({"stem": stem, "split": split, "height": pair[2][0], "width": pair[2][1]})
            if not images:
                raise PetsegError(f"split {split!r} is empty ({len(stems)} listed, all skipped or none listed): "
                                  f"check {raw_dir}/annotations")
            save_array(outputs.path(out_dir / f"{split}_images.npy"), np.stack(images))
            save_array(outputs.path(out_dir / f"{split}_masks.npy"), np.stack(masks))
            counts[split] = len(images)
            del images, masks
        largest = max(max(row["height"], row["width"]) for row in manifest)
        if image_size > largest:  # e.g. the 256 px profile on a copy whose photos are at most 160 px
            print(f"warning: preprocess.image_size {image_size} is larger than every photo (longest side at most "
                  f"{largest} px): all are upscaled", file=sys.stderr, flush=True)
        write_csv(outputs.path(out_dir / "manifest.csv"), manifest)
        write_csv(outputs.path(out_dir / "skipped.csv"), skipped, fieldnames=["stem", "split", "reason"])
    return counts | {"skipped": len(skipped)}


class _Serial:
    """Stands in for a Pool when there is one worker."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(func, jobs, chunksize=1):
        return map(func, jobs)

