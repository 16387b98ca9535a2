"""The preprocessed arrays: written once by preprocess, read one split at a time, memory-mapped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from petseg.core.io import atomic_path, read_csv


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


@dataclass
class Split:
    """One split of the preprocessed data, memory-mapped."""
    images: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray   # (N, H, W) uint8 in {0, 1}
    stems: list[str]

    @property
    def image_size(self) -> int:
        """The side of the square photos, as preprocess made them."""
        return int(self.images.shape[1])


def load_split(processed_dir: Path, split: str) -> Split:
    processed_dir = Path(processed_dir)
    stems = [row["stem"] for row in read_csv(processed_dir / "manifest.csv") if row["split"] == split]
    return Split(np.load(processed_dir / f"{split}_images.npy", mmap_mode="r"),
                 np.load(processed_dir / f"{split}_masks.npy", mmap_mode="r"), stems)


def skipped_of(processed_dir: Path, split: str) -> list[dict]:
    """The pairs of `split` that preprocess left out, with the reason (skipped.csv)."""
    path = Path(processed_dir) / "skipped.csv"
    return [row for row in read_csv(path) if row["split"] == split] if path.is_file() else []
