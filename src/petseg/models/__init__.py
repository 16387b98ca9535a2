"""The two models, built by name from their params.yaml section."""

from __future__ import annotations

from torch import nn

from petseg.models.resnet34_unet import ResNet34UNet
from petseg.models.unet import UNet

# params.yaml keys of each model's section that define its architecture (the rest is training)
ARCHITECTURE_KEYS = {"unet": ("base_channels",), "resnet34_unet": ("decoder_channels",)}
_CLASSES = {"unet": UNet, "resnet34_unet": ResNet34UNet}


def architecture(name: str, section: dict) -> dict:
    return {key: section[key] for key in ARCHITECTURE_KEYS[name]}


def build_model(name: str, arch: dict) -> nn.Module:
    return _CLASSES[name](**arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
