"""Dataset files: decoding photos and trimaps, the train/valid/test split, the preprocessed arrays."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from petseg.lib.augment import reseed
from petseg.lib.archives import read_split_list
from petseg.lib.images import decode_image
from petseg.lib.io import atomic_path, read_csv, write_csv
from petseg.lib.progress import note, progress

SPLITS = ("train", "valid", "test")
PET, BACKGROUND, BORDER = 1, 2, 3  # trimap values of the official annotations


class BadFile(ValueError):
    """A photo or trimap that cannot be used; the message names the file and the reason."""


def decode_trimap(path: Path) -> np.ndarray:
    with Image.open(path) as trimap:
        return np.asarray(trimap if trimap.mode in ("L", "P") else trimap.convert("L"))


def trimap_to_mask(trimap: np.ndarray) -> np.ndarray:
    """Binary pet mask from a trimap: pet (1) and border (3) are pet, background (2) is not."""
    bad = ~np.isin(trimap, (PET, BACKGROUND, BORDER))
    if bad.any():
        raise ValueError(f"trimap values {sorted(np.unique(trimap[bad]).tolist())} outside {{1, 2, 3}}")
    return (trimap != BACKGROUND).astype(np.uint8)


def load_pair(image_path: Path, trimap_path: Path, size: int, min_side: int = 1,
              max_pixels: int = 200_000_000) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Decode one photo and its trimap, resize to size x size; returns image, mask, original (h, w).

    Raises BadFile with a one-line reason for anything that cannot be made into a correct pair.
    """
    for path in (image_path, trimap_path):
        if not Path(path).is_file():
            raise BadFile(f"{path}: missing")
    try:
        with Image.open(image_path) as probe:
            width, height = probe.size
        if width * height > max_pixels:
            raise BadFile(f"{image_path}: {width}x{height} px is over preprocess.max_pixels ({max_pixels})")
        if min(width, height) < min_side:
            raise BadFile(f"{image_path}: {width}x{height} px is under preprocess.min_side ({min_side} px)")
        Image.MAX_IMAGE_PIXELS = max_pixels  # our own limit above replaces Pillow's bomb check
        image = decode_image(image_path)
    except (OSError, SyntaxError, ValueError) as err:
        raise BadFile(f"{image_path}: not a readable image ({err})") from None
    try:
        trimap = decode_trimap(trimap_path)
        mask = Image.fromarray(trimap_to_mask(trimap))
    except (OSError, SyntaxError, ValueError) as err:
        raise BadFile(f"{trimap_path}: {err}") from None
    if mask.size != image.size:
        # a trimap saved at another scale is usable if its shape matches; resized with nearest
        if abs(mask.width / mask.height - image.width / image.height) > 0.01 * image.width / image.height:
            raise BadFile(f"{trimap_path}: {mask.width}x{mask.height} does not match the photo's "
                          f"{image.width}x{image.height} (other aspect ratio)")
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    mask = mask.resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(image, dtype=np.uint8), np.asarray(mask, dtype=np.uint8), (height, width)


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
    with Pool(workers) if workers > 1 else _Serial() as pool:
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
                raise ValueError(f"split {split!r} is empty ({len(stems)} listed, all skipped or none listed): "
                                 f"check {raw_dir}/annotations")
            save_array(out_dir / f"{split}_images.npy", np.stack(images))
            save_array(out_dir / f"{split}_masks.npy", np.stack(masks))
            counts[split] = len(images)
    largest = max(max(row["height"], row["width"]) for row in manifest)
    if image_size > largest:  # e.g. the 256 px profile on a copy whose photos are at most 160 px
        print(f"warning: preprocess.image_size {image_size} is larger than every photo (longest side at most "
              f"{largest} px): all are upscaled", file=sys.stderr, flush=True)
    write_csv(out_dir / "manifest.csv", manifest)
    write_csv(out_dir / "skipped.csv", skipped, fieldnames=["stem", "split", "reason"])
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


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


@dataclass
class Split:
    """One split of the preprocessed data, memory-mapped."""
    images: np.ndarray  # (N, H, W, 3) uint8
    masks: np.ndarray   # (N, H, W) uint8 in {0, 1}
    stems: list[str]


def load_split(processed_dir: Path, split: str) -> Split:
    processed_dir = Path(processed_dir)
    stems = [row["stem"] for row in read_csv(processed_dir / "manifest.csv") if row["split"] == split]
    return Split(np.load(processed_dir / f"{split}_images.npy", mmap_mode="r"),
                 np.load(processed_dir / f"{split}_masks.npy", mmap_mode="r"), stems)


class SegmentationDataset(torch.utils.data.Dataset):
    """(image, mask) uint8 tensors (3,H,W) and (1,H,W), through an optional albumentations transform.

    Indexed by `i`, or by `(i, seed)` (see `AugmentationSeeds`): the transform is then reseeded first,
    so a sample's augmentation depends on its seed alone, not on the worker or the samples before it.
    """

    def __init__(self, split: Split, transform=None):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split.images)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.split.images[index]), np.asarray(self.split.masks[index])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, mask = self.load(index)
        if self.transform is not None:
            if seed is not None:
                reseed(self.transform, seed)
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(mask[None].copy())
