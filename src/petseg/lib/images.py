"""Photos in and masks out, with numpy and Pillow alone: shared by training, evaluation and both ways of
predicting (a PyTorch checkpoint, or an ONNX model without torch installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from petseg.lib.io import atomic_path

OVERLAY = (255, 40, 40)  # mask colour over the photo
ALPHA = 0.45


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Tint the mask's pixels of a uint8 (H, W, 3) photo."""
    out = image.astype(np.float32)
    tint = mask.astype(bool)
    out[tint] = (1 - ALPHA) * out[tint] + ALPHA * np.array(OVERLAY, np.float32)
    return out.round().astype(np.uint8)


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


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


def upscale_mask(probability: np.ndarray, size: tuple[int, int], threshold: float) -> np.ndarray:
    """The mask at another (width, height): probabilities resized bilinearly, then thresholded."""
    full = Image.fromarray(np.asarray(probability, np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(full) > threshold
