"""Checkpoints: weights plus the metadata needed to rebuild and trust them, loaded safely."""

from __future__ import annotations

import pickle
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

from petseg.core.errors import PetsegError
from petseg.core.io import atomic_path
from petseg.models.build import build_model
from petseg.models.spec import check_image_size


def petseg_version() -> str:
    """The installed petseg's version (pyproject.toml), for the checkpoint's record."""
    try:
        return version("petseg")
    except PackageNotFoundError:  # run from src/ without installing (benchmarks/gpu.sh)
        return "not installed"


class CheckpointError(PetsegError):
    """A missing, foreign or unsafe checkpoint; the message is one line."""


def save_checkpoint(path: Path, state_dict: dict, name: str, arch: dict, image_size: int, **meta) -> None:
    """Weights plus model name, architecture, image size, versions and `meta` (epoch, Dice...)."""
    state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}  # channels_last -> plain
    payload = {"model": name, "arch": arch, "image_size": image_size, **meta,
               "petseg_version": petseg_version(), "torch_version": torch.__version__.split("+")[0],
               "state_dict": state}
    # through a file object: given a path, torch names the zip's root folder after the (random) temp name
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: Path, expected_model: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes; refuses pickled code (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (`dvc checkout {path}` restores it from the DVC "
                              "cache, `dvc pull` from a remote you set up, `dvc repro` trains it)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path}: not a petseg checkpoint or unsafe to load "
                              f"({str(err).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "model" not in payload:
        raise CheckpointError(f"{path}: not a petseg checkpoint (no model name and state_dict)")
    name, arch = payload["model"], payload.get("arch", {})
    check_image_size(payload.get("image_size"), path)
    if expected_model is not None and name != expected_model:
        raise CheckpointError(f"{path}: is a {name} checkpoint ({arch}), not {expected_model}")
    try:
        model = build_model(name, arch)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its weights do not fit the {name} {arch} it names "
                              f"({str(err).splitlines()[0][:120]})") from None
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta
