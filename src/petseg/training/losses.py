"""Dice + BCE loss on logits."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch (pixels summed), smoothed so empty masks are defined."""
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    return 1 - (2 * intersection + smooth) / (prob.sum() + target.sum() + smooth)


class DiceBCELoss(nn.Module):
    def __init__(self, dice_weight: float = 0.5, bce_weight: float = 0.5):
        super().__init__()
        self.dice_weight, self.bce_weight = dice_weight, bce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # the loss stays in fp32 under autocast
        return (self.dice_weight * soft_dice_loss(logits, target)
                + self.bce_weight * F.binary_cross_entropy_with_logits(logits, target))
