"""Masks for new photos of any size or format, at each photo's own resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from petseg.data import decode_image
from petseg.evaluate import predict_probabilities, upscale_mask
from petseg.visualize import overlay, save_png

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


def collect_photos(inputs: list[Path]) -> list[Path]:
    """The files given, and the photo files (by suffix) inside the folders given, in order."""
    photos = []
    for path in map(Path, inputs):
        if path.is_dir():
            photos += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        elif path.exists():
            photos.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such photo or folder")
    return photos


def predict_photos(model, image_size: int, photos: list[Path], out_dir: Path, batch_size: int,
                   threshold: float, tta_hflip: bool = False, amp: bool = False) -> tuple[list[Path], list[str]]:
    """Write <stem>_mask.png (0/255) and <stem>_overlay.png per photo; returns written, skipped reasons."""
    written, skipped = [], []
    for start in range(0, len(photos), batch_size):
        batch, inputs = [], []
        for path in photos[start:start + batch_size]:
            try:
                photo = decode_image(path)
            except (OSError, SyntaxError, ValueError) as err:
                skipped.append(f"{path}: not a readable image ({err})")
                continue
            batch.append((path, photo))
            inputs.append(np.asarray(photo.resize((image_size, image_size), Image.Resampling.BILINEAR)))
        if not batch:
            continue
        probabilities, _ = predict_probabilities(model, np.stack(inputs), batch_size, tta_hflip=tta_hflip, amp=amp)
        for (path, photo), probability in zip(batch, probabilities.numpy()):
            # probabilities, not the thresholded mask, are scaled back: smoother edges at full size
            mask = upscale_mask(probability, photo.size, threshold)
            save_png(Image.fromarray((mask * 255).astype(np.uint8)), out_dir / f"{path.stem}_mask.png")
            save_png(Image.fromarray(overlay(np.asarray(photo), mask)), out_dir / f"{path.stem}_overlay.png")
            written.append(out_dir / f"{path.stem}_mask.png")
    return written, skipped
