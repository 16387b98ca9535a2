"""How every way of predicting reads a model: the threshold and flip TTA, the batch, and how a photo of any
shape becomes the model's input (the squash rule). Torch-free: the ONNX predict path uses it too.

In a project these come from params.yaml's `evaluate` section; outside one, from what an ONNX model records
(the export stage writes them into it), or else from DEFAULTS, the values params.yaml ships with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from petseg.core.errors import PetsegError
from petseg.models.spec import STRIDE

# Longer/shorter side up to which a photo is squashed to the square training size, as in training. On 4:1
# crops of the sample's test photos, keeping the aspect scored 0.761 against 0.708 (UNet; the ResNet34-UNet
# 0.699 against 0.806); on the whole photos squashing scored 0.833 against 0.813 (benchmarks/predict_aspect.py).
MAX_SQUASH = 2.0


@dataclass(frozen=True)
class Settings:
    """Pet where the sigmoid of a logit is over `threshold`; with `tta_hflip`, averaged with the mirror's."""
    threshold: float
    tta_hflip: bool
    batch_size: int

    def record(self) -> dict:
        """What an ONNX model records of these (the batch size is the caller's)."""
        return {"threshold": self.threshold, "tta_hflip": self.tta_hflip}


DEFAULTS = Settings(threshold=0.5, tta_hflip=True, batch_size=16)  # params.yaml's evaluate (a test keeps them equal)
BOOTSTRAP_DEFAULTS = {"samples": 2000, "confidence": 0.95, "seed": 42}  # params.yaml's, likewise


def from_params(params) -> Settings:
    """params.yaml's evaluate.threshold, evaluate.tta_hflip and evaluate.batch_size."""
    e = params.evaluate
    return Settings(threshold=e.threshold, tta_hflip=e.tta_hflip, batch_size=e.batch_size)


def bootstrap_from_params(params) -> dict:
    """The bootstrap interval's settings: resamples, confidence and seed."""
    return {"samples": params.evaluate.bootstrap_samples, "confidence": params.evaluate.confidence,
            "seed": params.seed}


def from_record(meta: dict, path: Path) -> Settings:
    """The threshold and TTA a model file records, checked (DEFAULTS for what it does not record)."""
    threshold, tta = meta.get("threshold", DEFAULTS.threshold), meta.get("tta_hflip", DEFAULTS.tta_hflip)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise PetsegError(f"{path}: records threshold {threshold!r}; a threshold is a number between 0 and 1")
    if not isinstance(tta, bool):
        raise PetsegError(f"{path}: records tta_hflip {tta!r}; it is true or false")
    return Settings(threshold=float(threshold), tta_hflip=tta, batch_size=DEFAULTS.batch_size)


def model_input(photo: Image.Image, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The photo at the model's scale, and the (height, width) of the photo inside the array.

    Up to MAX_SQUASH (as the training photos were) it is squashed to the square training size; a wider or
    taller one keeps its aspect: shorter side `image_size` px, padded (mirrored) to a multiple of STRIDE.
    """
    if max(photo.size) <= MAX_SQUASH * min(photo.size):
        return np.asarray(photo.resize((image_size, image_size), Image.Resampling.BILINEAR)), (image_size, image_size)
    scale = image_size / min(photo.size)
    width, height = (max(STRIDE, round(side * scale)) for side in photo.size)
    array = np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR))
    pad = [(0, -height % STRIDE), (0, -width % STRIDE), (0, 0)]
    return np.pad(array, pad, mode="symmetric"), (height, width)
