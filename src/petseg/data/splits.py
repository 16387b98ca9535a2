"""The split: the official list files, and a seeded train/valid split of trainval that every machine draws alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_split_list(path: Path) -> list[str]:
    """Stems of an official list file (`Abyssinian_1 1 1 1` lines; `#` lines are comments)."""
    lines = Path(path).read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]


def split_trainval(stems: list[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/valid split: the same stems on every machine for the same seed."""
    stems = sorted(set(stems))
    order = np.random.default_rng(seed).permutation(len(stems))
    n_valid = max(1, round(len(stems) * valid_fraction))
    valid = sorted(stems[i] for i in order[:n_valid])
    train = sorted(stems[i] for i in order[n_valid:])
    return train, valid


def official_splits(raw_dir: Path, valid_fraction: float, seed: int) -> dict[str, list[str]]:
    annotations = Path(raw_dir) / "annotations"
    train, valid = split_trainval(read_split_list(annotations / "trainval.txt"), valid_fraction, seed)
    return {"train": train, "valid": valid, "test": sorted(set(read_split_list(annotations / "test.txt")))}


def pair_paths(raw_dir: Path, stem: str) -> tuple[Path, Path]:
    raw_dir = Path(raw_dir)
    return raw_dir / "images" / f"{stem}.jpg", raw_dir / "annotations" / "trimaps" / f"{stem}.png"


def list_order(raw_dir: Path, stems: list[str]) -> list[int]:
    """Indices of `stems` in the order the official lists give them (test.txt, then trainval.txt); stems in
    neither come last, by name."""
    annotations = Path(raw_dir) / "annotations"
    listed = [stem for name in ("test.txt", "trainval.txt") if (annotations / name).is_file()
              for stem in read_split_list(annotations / name)]
    rank = {stem: i for i, stem in reversed(list(enumerate(listed)))}
    return sorted(range(len(stems)), key=lambda i: (rank.get(stems[i], len(listed)), stems[i]))
