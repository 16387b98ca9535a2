"""The split: the official list files, and a seeded train/valid split of trainval that every machine draws alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from petseg.core.errors import PetsegError


def read_split_list(path: Path) -> list[str]:
    """Stems of an official list file (`Abyssinian_1 1 1 1` lines; `#` lines are comments).

    A stem is a file name without its folder: one with a `/`, a `\\` or a leading `.` (`../../home/x`) would
    make petseg read a photo outside the folder, and is refused in one line naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise PetsegError(f"{path}: not a text list file ({err.reason} at byte {err.start})") from None
    stems = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.startswith("#"):
            stem = line.split()[0]
            if "/" in stem or "\\" in stem or stem.startswith(".") or "\0" in stem:
                raise PetsegError(f"{path}:{number}: {stem[:80]!r} is not a file name (a stem has no folder and "
                                  "does not start with '.')")
            stems.append(stem)
    return stems


def check_no_leak(trainval: list[str], test: list[str], where: str) -> None:
    """Refuse stems listed in both trainval.txt and test.txt: test photos would be trained on."""
    leaked = sorted(set(trainval) & set(test))
    if leaked:
        shown = ", ".join(leaked[:5]) + (f" (and {len(leaked) - 5} more)" if len(leaked) > 5 else "")
        raise PetsegError(f"{where}: {len(leaked)} stems listed in both annotations/trainval.txt and "
                          f"annotations/test.txt (test photos would be trained on): {shown}")


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
    trainval, test = read_split_list(annotations / "trainval.txt"), read_split_list(annotations / "test.txt")
    check_no_leak(trainval, test, str(raw_dir))  # download checks it too; a data/raw placed by hand is checked here
    train, valid = split_trainval(trainval, valid_fraction, seed)
    return {"train": train, "valid": valid, "test": sorted(set(test))}


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
