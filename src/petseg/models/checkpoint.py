"""Checkpoints: weights plus the metadata needed to rebuild and trust them, loaded safely."""

from __future__ import annotations

import pickle
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

from petseg.core.errors import PetsegError, brief
from petseg.core.io import atomic_path
from petseg.core.limits import MAX_CHECKPOINT_BYTES, MAX_MODEL_PARAMETERS
from petseg.models.build import build_model, count_parameters
from petseg.models.spec import MODELS, check_image_size


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


def check_zip(path: Path) -> None:
    """Refuse, before torch.load inflates anything, a file that is not a zip (torch.save's format since 1.6; an
    empty file too) or whose members would inflate to over MAX_CHECKPOINT_BYTES."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise CheckpointError(f"{path}: not a petseg checkpoint (not a zip as torch.save writes: "
                              f"{brief(err)})") from None
    inflated = sum(member.file_size for member in members)
    if inflated > MAX_CHECKPOINT_BYTES or len(members) > 100_000:
        raise CheckpointError(f"{path}: would inflate to {inflated} bytes in {len(members)} members; petseg takes "
                              f"checkpoints of at most {MAX_CHECKPOINT_BYTES} bytes")


def check_architecture(path: Path, name, arch, state_dict) -> nn.Module:
    """The model `name` with `arch`, built on the meta device (no memory) to check the parameter count and every
    weight's name, shape and dtype against `state_dict`; then built for real and loaded."""
    if not isinstance(name, str) or name not in MODELS:
        raise CheckpointError(f"{path}: names model {str(name)[:40]!r}; petseg's are {', '.join(MODELS)}")
    if not isinstance(arch, dict) or not all(isinstance(k, str) and type(v) is int and v >= 1 for k, v in arch.items()):
        raise CheckpointError(f"{path}: its architecture {str(arch)[:80]} is not a mapping of names to positive "
                              "integers")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: its state_dict is not a mapping of weights")
    try:
        with torch.device("meta"):
            skeleton = build_model(name, arch)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its architecture {arch} does not build a {name} "
                              f"({brief(err)})") from None
    n = count_parameters(skeleton)
    if n > MAX_MODEL_PARAMETERS:
        raise CheckpointError(f"{path}: a {name} {arch} has {n:,} parameters; petseg takes models of at most "
                              f"{MAX_MODEL_PARAMETERS:,}")
    expected = skeleton.state_dict()
    for key, tensor in expected.items():
        given = state_dict.get(key)
        if not isinstance(given, torch.Tensor) or given.shape != tensor.shape or given.dtype != tensor.dtype:
            what = "missing" if given is None else (f"{tuple(given.shape)} {given.dtype}"
                                                    if isinstance(given, torch.Tensor) else type(given).__name__)
            raise CheckpointError(f"{path}: its weights do not fit the {name} {arch} it names ({key}: {what}, "
                                  f"expected {tuple(tensor.shape)} {tensor.dtype})")
    unexpected = [key for key in state_dict if key not in expected]
    if unexpected:
        raise CheckpointError(f"{path}: its weights do not fit the {name} {arch} it names (unexpected "
                              f"{', '.join(map(str, unexpected[:3]))})")
    model = build_model(name, arch)
    model.load_state_dict(state_dict)
    return model


def load_checkpoint(path: Path, expected_model: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes; refuses pickled code (weights_only), and checks sizes before
    allocating: the zip's inflated size, then the architecture's parameters and every weight's shape on the
    meta device (petseg.core.limits)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (`dvc checkout {path}` restores it from the DVC "
                              "cache, `dvc pull` from a remote you set up, `dvc repro` trains it)")
    check_zip(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, TypeError,
            IndexError, KeyError, AttributeError) as err:  # torch's reader raises any of these on a crafted file
        raise CheckpointError(f"{path}: not a petseg checkpoint or unsafe to load "
                              f"({brief(err)})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "model" not in payload:
        raise CheckpointError(f"{path}: not a petseg checkpoint (no model name and state_dict)")
    name, arch = payload["model"], payload.get("arch", {})
    check_image_size(payload.get("image_size"), path)
    if payload.get("precision", "fp32") not in ("fp32", "bf16", "fp16"):
        raise CheckpointError(f"{path}: records precision {str(payload['precision'])[:40]!r}; "
                              "one of fp32, bf16, fp16")
    if expected_model is not None and name != expected_model:
        raise CheckpointError(f"{path}: is a {name} checkpoint ({arch}), not {expected_model}")
    model = check_architecture(path, name, arch, payload["state_dict"])
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta
