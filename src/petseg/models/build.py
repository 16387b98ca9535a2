"""A model built by name from its architecture params, and the normalised input it takes."""

from __future__ import annotations

import importlib

import torch

from petseg.models.spec import IMAGENET_MEAN, IMAGENET_STD

# where each class lives: imported on first use, so that a model's code is loaded only when it is built
CLASSES = {"unet": ("petseg.models.unet", "UNet"), "resnet34_unet": ("petseg.models.resnet34_unet", "ResNet34UNet")}


def build_model(name: str, arch: dict) -> torch.nn.Module:
    """A fresh `name` model with architecture `arch` (e.g. {"base_channels": 16})."""
    module, cls = CLASSES[name]
    return getattr(importlib.import_module(module), cls)(**arch)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) photos to the ImageNet-normalised float batch the models take.

    Done on the batch, on the model's device, rather than per sample: loaders move uint8.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std
