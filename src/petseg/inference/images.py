"""Photos in and masks out, with numpy and Pillow alone: shared by training, evaluation and both ways of
predicting (a PyTorch checkpoint, or an ONNX model without torch installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from petseg.core.io import atomic_path

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


def upscale_mask(probability: np.ndarray, size: tuple[int, int], threshold: float) -> np.ndarray:
    """The mask at another (width, height): probabilities resized bilinearly, then thresholded."""
    full = Image.fromarray(np.asarray(probability, np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(full) > threshold
