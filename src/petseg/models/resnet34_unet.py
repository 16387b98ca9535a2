"""ResNet34-UNet from scratch: a ResNet34 encoder and the reference's light decoder (its Figure 6)."""

from __future__ import annotations

import torch
from torch import nn

from petseg.models.blocks import ConvBlock, concat, init_weights


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet34Encoder(nn.Module):
    """7x7 stride-2 stem, max-pool, then BasicBlock stages of 3, 4, 6, 3 blocks (64..512 channels)."""

    layers = (3, 4, 6, 3)
    widths = (64, 128, 256, 512)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for i, (planes, blocks) in enumerate(zip(self.widths, self.layers), start=1):  # layer1 .. layer4
            setattr(self, f"layer{i}", self._make_layer(planes, blocks, stride=1 if i == 1 else 2))

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 4, 8, 16 and 32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


class DecoderBlock(nn.Module):
    """Concatenate the skip, upsample x2 with a transposed conv, reduce to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = ConvBlock(in_channels // 2, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(concat(x, skip)))


class ResNet34UNet(nn.Module):
    """Encoder, 3x3 bottleneck 512 -> 256, four decoder blocks, a last x2 transposed conv, 1x1 head."""

    def __init__(self, decoder_channels: int = 32, in_channels: int = 3, out_channels: int = 1):
        super().__init__()
        self.encoder = ResNet34Encoder(in_channels)
        self.bottleneck = nn.Sequential(conv3x3(512, 256), nn.BatchNorm2d(256), nn.ReLU(inplace=True))
        self.decoder = nn.ModuleList()
        channels = 256
        for skip_channels in reversed(ResNet34Encoder.widths):
            self.decoder.append(DecoderBlock(channels + skip_channels, decoder_channels))
            channels = decoder_channels
        self.final_up = nn.ConvTranspose2d(decoder_channels, decoder_channels, 2, stride=2)
        self.head = nn.Conv2d(decoder_channels, out_channels, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        x = self.bottleneck(features[-1])
        for step, skip in zip(self.decoder, reversed(features)):
            x = step(x, skip)
        return self.head(self.final_up(x))
