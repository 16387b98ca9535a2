"""Decoding the dataset's files: photos by their content, trimaps to pet masks, a photo and its trimap as a pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from petseg.core.errors import PetsegError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}  # files taken as photos
PET, BACKGROUND, BORDER = 1, 2, 3  # trimap values of the official annotations


class BadFile(PetsegError):
    """A photo or trimap that cannot be used; the message names the file and the reason."""


def decode_image(path: Path, upright: bool = False) -> Image.Image:
    """Open a photo by its content, whatever its extension says (JPEG, PNG, GIF...), as RGB.

    `upright`: turned as its EXIF orientation says, as a viewer shows it (new photos; the dataset's trimaps
    follow the stored pixels, so training data is read as stored).
    """
    with Image.open(path) as opened:
        opened.seek(0)  # first frame of an animated GIF
        image = ImageOps.exif_transpose(opened) if upright else opened
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bits, don't clip
            deep = np.asarray(image, dtype=np.float64)
            return Image.fromarray(np.round(deep * 255 / 65535).clip(0, 255).astype(np.uint8)).convert("RGB")
        return image.convert("RGB")


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

