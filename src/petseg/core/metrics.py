"""Segmentation metrics from confusion counts.

Dice = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + FN); both are 1 when prediction and truth
are empty. Dataset-level scores sum the counts over every pixel of every image first (the headline
number, independent of batch size); per-image scores average the images' own scores; the reference's
protocol averages the Dice of each batch. Boundary IoU scores the edges alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0


def confusion_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, 4) int64 counts tp, fp, fn, tn for binary masks of shape (N, ...)."""
    pred, target = pred.bool().flatten(1), target.bool().flatten(1)
    tp = (pred & target).sum(1)
    fp = (pred & ~target).sum(1)
    fn = (~pred & target).sum(1)
    tn = (~pred & ~target).sum(1)
    return torch.stack([tp, fp, fn, tn], dim=1)


def to_confusion(counts: torch.Tensor) -> Confusion:
    """Sum (N, 4) or (4,) counts into one Confusion."""
    return Confusion(*(int(v) for v in counts.reshape(-1, 4).sum(0).tolist()))


def dice_score(c: Confusion) -> float:
    denominator = 2 * c.tp + c.fp + c.fn
    return 1.0 if denominator == 0 else 2 * c.tp / denominator


def iou_score(c: Confusion) -> float:
    denominator = c.tp + c.fp + c.fn
    return 1.0 if denominator == 0 else c.tp / denominator


def pixel_accuracy(c: Confusion) -> float:
    total = c.tp + c.fp + c.fn + c.tn
    return 1.0 if total == 0 else (c.tp + c.tn) / total


def summarize(per_image: torch.Tensor) -> dict:
    """Dataset-level Dice, IoU and pixel accuracy, and mean per-image Dice, from (N, 4) counts."""
    total = to_confusion(per_image)
    image_dice = [dice_score(to_confusion(row)) for row in per_image]
    return {
        "dice": dice_score(total),
        "mean_image_dice": math.fsum(image_dice) / len(image_dice) if image_dice else float("nan"),
        "iou": iou_score(total),
        "pixel_accuracy": pixel_accuracy(total),
        "n_images": len(image_dice),
    }


def mean_batch_dice(counts: torch.Tensor, batch_size: int) -> float:
    """The reference's protocol: the Dice of each batch's pooled pixels, averaged over the batches.

    `counts` (N, 4) in the order the photos are fed; the last batch may be smaller (and weighs as much).
    """
    batches = [to_confusion(counts[start:start + batch_size]) for start in range(0, len(counts), batch_size)]
    return math.fsum(dice_score(c) for c in batches) / len(batches) if batches else float("nan")


def inner_boundary(masks: torch.Tensor, width: int) -> torch.Tensor:
    """The pixels of (N, H, W) boolean masks within `width` pixels of their contour (the image edge counts as
    background): the mask less its erosion by a (2 width + 1) square."""
    outside = F.pad((~masks).float()[:, None], (width,) * 4, value=1.0)
    eroded = F.max_pool2d(outside, 2 * width + 1, stride=1)[:, 0] == 0
    return masks & ~eroded


def boundary_iou(pred: torch.Tensor, target: torch.Tensor, width: int) -> torch.Tensor:
    """Boundary IoU per image (Cheng et al. 2021): IoU of the predicted and true masks' inner boundaries of
    `width` pixels; 1 where both are empty."""
    pred_edge, true_edge = inner_boundary(pred.bool(), width), inner_boundary(target.bool(), width)
    intersection = (pred_edge & true_edge).flatten(1).sum(1)
    union = (pred_edge | true_edge).flatten(1).sum(1)
    return torch.where(union == 0, 1.0, intersection / union.clamp(min=1))


def boundary_width(height: int, width: int, ratio: float = 0.02) -> int:
    """The boundary's width in pixels: `ratio` of the image diagonal (the paper's 2%), at least 1."""
    return max(1, round(ratio * math.hypot(height, width)))
