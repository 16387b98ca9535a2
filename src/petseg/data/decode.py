"""Decoding the dataset's files: photos by their content, trimaps to pet masks, a photo and its trimap as a pair."""

from __future__ import annotations

import contextlib
import struct
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from petseg.core.errors import PetsegError
from petseg.core.limits import MAX_PHOTO_PIXELS

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}  # files taken as photos
PET, BACKGROUND, BORDER = 1, 2, 3  # trimap values of the official annotations


class BadFile(PetsegError):
    """A photo or trimap that cannot be used; the message names the file and the reason."""


# What Pillow raises on a malformed or hostile file: besides OSError and SyntaxError, its decoders raise
# ValueError, struct.error, IndexError, TypeError, ZeroDivisionError or EOFError on crafted headers, and
# DecompressionBombError (no OSError) on a header over the pixel limit. Each is the file's fault, not petseg's.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, ZeroDivisionError,
                 Image.DecompressionBombError)


@contextlib.contextmanager
def opened(path: Path, max_pixels: int = MAX_PHOTO_PIXELS, what: str = "photo") -> Iterator[Image.Image]:
    """`Image.open(path)` with its size checked against `max_pixels` before any pixel is decoded.

    Pillow's own bomb check is set to the same limit for this file and restored after, so the limit is
    `max_pixels` for every file whatever was opened before (Pillow's default would refuse 179 MP on its own).
    Raises BadFile naming the file for anything that is not a readable image of at most `max_pixels`.
    """
    previous = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                image = Image.open(path)
            except Image.DecompressionBombError:
                image = None
            except DECODE_ERRORS as err:
                raise BadFile(f"{path}: not a readable image ({one_line(err)})") from None
        if image is None:  # the header's size, for the message
            raise BadFile(f"{path}: declares over {max_pixels} px (a decompression bomb?); petseg takes a {what} "
                          f"of at most {max_pixels} px")
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadFile(f"{path}: {width}x{height} px is over the {max_pixels} px limit for a {what}")
            yield image
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def one_line(err: BaseException) -> str:
    """An exception's message on one line, at most 160 characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:160]


def decode_image(path: Path, upright: bool = False, max_pixels: int = MAX_PHOTO_PIXELS) -> Image.Image:
    """Open a photo by its content, whatever its extension says (JPEG, PNG, GIF...), as RGB.

    `upright`: turned as its EXIF orientation says, as a viewer shows it (new photos; the dataset's trimaps
    follow the stored pixels, so training data is read as stored). Raises BadFile (one line naming the file)
    for a file that is not a readable image, or one over `max_pixels`, checked before decoding.
    """
    with opened(path, max_pixels) as image:
        try:
            image.seek(0)  # first frame of an animated GIF
            if upright:
                image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: scale to 8 bits, don't clip
                deep = np.asarray(image, dtype=np.float64)
                return Image.fromarray(np.round(deep * 255 / 65535).clip(0, 255).astype(np.uint8)).convert("RGB")
            return image.convert("RGB")
        except DECODE_ERRORS as err:
            raise BadFile(f"{path}: not a readable image ({one_line(err)})") from None


def decode_trimap(path: Path, max_pixels: int = MAX_PHOTO_PIXELS) -> np.ndarray:
    """A trimap's values, (H, W) uint8; BadFile for an unreadable one or one over `max_pixels`."""
    with opened(path, max_pixels, "trimap") as trimap:
        try:
            return np.asarray(trimap if trimap.mode in ("L", "P") else trimap.convert("L"))
        except DECODE_ERRORS as err:
            raise BadFile(f"{path}: not a readable image ({one_line(err)})") from None


def trimap_to_mask(trimap: np.ndarray) -> np.ndarray:
    """Binary pet mask from a trimap: pet (1) and border (3) are pet, background (2) is not."""
    bad = ~np.isin(trimap, (PET, BACKGROUND, BORDER))
    if bad.any():
        raise ValueError(f"trimap values {sorted(np.unique(trimap[bad]).tolist())} outside {{1, 2, 3}}")
    return (trimap != BACKGROUND).astype(np.uint8)


def load_pair(image_path: Path, trimap_path: Path, size: int, min_side: int = 1,
              max_pixels: int = MAX_PHOTO_PIXELS) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Decode one photo and its trimap, resize to size x size; returns image, mask, original (h, w).

    Raises BadFile with a one-line reason for anything that cannot be made into a correct pair. Both sizes
    are read from the headers and checked (pixels, min_side, the trimap's aspect) before either is decoded.
    """
    for path in (image_path, trimap_path):
        if not Path(path).is_file():
            raise BadFile(f"{path}: missing")
    with opened(image_path, max_pixels) as probe:
        width, height = probe.size
    if min(width, height) < min_side:
        raise BadFile(f"{image_path}: {width}x{height} px is under preprocess.min_side ({min_side} px)")
    with opened(trimap_path, max_pixels, "trimap") as probe:
        trimap_width, trimap_height = probe.size
    # a trimap saved at another scale is usable if its shape matches; resized with nearest
    if abs(trimap_width / trimap_height - width / height) > 0.01 * width / height:
        raise BadFile(f"{trimap_path}: {trimap_width}x{trimap_height} does not match the photo's "
                      f"{width}x{height} (other aspect ratio)")
    image = decode_image(image_path, max_pixels=max_pixels)
    try:
        mask = Image.fromarray(trimap_to_mask(decode_trimap(trimap_path, max_pixels)))
    except ValueError as err:  # BadFile, or values outside {1, 2, 3}
        raise BadFile(str(err) if isinstance(err, BadFile) else f"{trimap_path}: {err}") from None
    if image.size != (width, height) or mask.size != (trimap_width, trimap_height):
        raise BadFile(f"{image_path}: changed while it was read")
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    mask = mask.resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(image, dtype=np.uint8), np.asarray(mask, dtype=np.uint8), (height, width)
