"""The two models: the one list of their names, and each built by name from its architecture params."""

from __future__ import annotations

import importlib
from pathlib import Path

# params.yaml section (and file stem: models/NAME.pt, plots/train_NAME.csv) -> the name people read.
# Every list of models in petseg is this one; dvc.yaml's train stages are checked against it by a test.
MODELS = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}
# where each class lives: imported on first use, so reading the names imports no torch
_CLASSES = {"unet": ("petseg.lib.models.unet", "UNet"),
            "resnet34_unet": ("petseg.lib.models.resnet34_unet", "ResNet34UNet")}


def default_checkpoints() -> list[Path]:
    """models/NAME.pt of every model: where the train stage saves them."""
    return [Path(f"models/{name}.pt") for name in MODELS]


def build_model(name: str, arch: dict):
    """A fresh `name` model with architecture `arch` (e.g. {"base_channels": 16})."""
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)(**arch)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
