"""UNet (Ronneberger et al. 2015) with BatchNorm, width scaled by `base_channels`."""

from __future__ import annotations

import torch
from torch import nn

from petseg.models.blocks import ConvBlock, concat, init_weights


class UpBlock(nn.Module):
    """2x2 transposed conv up, concatenate the skip, double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(concat(self.up(x), skip))


class UNet(nn.Module):
    """Four encoder steps (c, 2c, 4c, 8c), a 16c bottleneck, four decoder steps, a 1x1 head."""

    def __init__(self, base_channels: int = 64, in_channels: int = 3, out_channels: int = 1):
        super().__init__()
        c = [base_channels * 2**i for i in range(5)]
        self.encoder = nn.ModuleList([ConvBlock(in_channels, c[0])] + [ConvBlock(c[i], c[i + 1]) for i in range(3)])
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(c[3], c[4])
        self.decoder = nn.ModuleList(UpBlock(c[i + 1], c[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(c[0], out_channels, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for step in self.encoder:
            x = step(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for step, skip in zip(self.decoder, reversed(skips)):
            x = step(x, skip)
        return self.head(x)
