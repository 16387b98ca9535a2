"""A model's predictions: sigmoid probabilities over uint8 photos, with flip TTA, in the recorded precision."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from petseg.core.device import Precision, autocast
from petseg.models.build import normalize

FP32 = Precision("fp32", "fp32")


@torch.inference_mode()
def predict_probabilities(model: nn.Module, images: np.ndarray, batch_size: int, channels_last: bool = True,
                          tta_hflip: bool = False, precision: Precision = FP32) -> tuple[torch.Tensor, float]:
    """Sigmoid probabilities (N, H, W) for uint8 (N, H, W, 3) photos, and the seconds spent in the model.

    With `tta_hflip`, the mean of the probabilities of each photo and of its mirror image (mirrored back).
    """
    device = next(model.parameters()).device
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(memory_format=memory_format)
    out, seconds = [], 0.0
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.array(images[start:start + batch_size])).permute(0, 3, 1, 2)  # a copy: memmaps are read-only
        batch = normalize(batch.to(device)).contiguous(memory_format=memory_format)
        begin = time.perf_counter()
        with autocast(device, precision):
            probability = torch.sigmoid(model(batch).float())
            if tta_hflip:
                mirrored = torch.sigmoid(model(batch.flip(-1)).float()).flip(-1)
                probability = (probability + mirrored) / 2
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - begin
        out.append(probability[:, 0].cpu())
    return torch.cat(out), seconds
