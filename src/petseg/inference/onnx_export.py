"""A checkpoint as an ONNX model (the export stage), checked against PyTorch with onnxruntime.

The graph takes uint8 RGB photos as NHWC (the layout a decoded photo has) with a dynamic batch, height and
width (multiples of 32), and does the ImageNet normalisation itself, so a caller needs no preprocessing code
and no torch. The export goes through torch.export (`torch.onnx.export(..., dynamo=True)`), which handles
both models with symbolic shapes under torch 2.13, onnxscript 0.7 and onnx 1.23; the legacy TorchScript
exporter is not needed.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from petseg.core.errors import PetsegError
from petseg.data.decode import PHOTO_SUFFIXES, decode_image
from petseg.inference.onnx_model import INPUT_LAYOUT, INPUT_NAME, METADATA_KEY, OUTPUT_NAME, load_onnx
from petseg.models.spec import IMAGENET_MEAN, IMAGENET_STD, STRIDE

# Largest |logit difference| allowed between onnxruntime and PyTorch, both fp32. Measured on the trained
# models and on real photos: about 1e-5 (the order of float32 rounding over a few dozen layers); a wrong
# graph (a missed normalisation, a swapped layout) is off by whole units.
PARITY_TOLERANCE = 1e-3
PARITY_PHOTOS = 4  # photos checked per size


class Packaged(nn.Module):
    """A segmentation model behind the ONNX interface: uint8 (N, H, W, 3) RGB in, (N, 1, H, W) logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()  # the same arithmetic as petseg.models.build.normalize
        return self.model((x / 255 - self.mean) / self.std)


def export_onnx(model: nn.Module, meta: dict, out: Path) -> None:
    """Write `model` (and `meta`, the checkpoint's metadata, into metadata_props) to `out`; the caller names a
    temporary file when the result must replace another whole (the export stage's whole_outputs)."""
    packaged = Packaged(model.float()).eval()
    size = meta["image_size"]
    example = torch.zeros((2, size, 2 * size, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    height, width = torch.export.Dim("height_32", min=1), torch.export.Dim("width_32", min=1)
    record = {key: value for key, value in meta.items()} | {"input": INPUT_LAYOUT}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the exporter's own deprecation notes, not ours to act on
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # "no torchvision"
        program = torch.onnx.export(packaged, (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], verbose=False,
                                    dynamic_shapes={"images": {0: batch, 1: STRIDE * height, 2: STRIDE * width}})
    program.model.metadata_props[METADATA_KEY] = json.dumps(record, sort_keys=True)
    # The exporter's notes that would make the file differ between two exports of the same weights: a dict
    # listed in an order that varies between processes, and each node's stack trace with the absolute path
    # of the code (another clone, another file).
    graph_notes = program.model.graph.metadata_props
    for key in [k for k in graph_notes if k.startswith("pkg.torch.export.")]:
        del graph_notes[key]
    for node in program.model.graph:
        node.metadata_props.pop("pkg.torch.onnx.stack_trace", None)
    program.save(out)


def parity_sizes(image_size: int) -> list[tuple[int, int]]:
    """(height, width) of the checks: the training square, a wide and a tall input."""
    return [(image_size, image_size), (image_size, 3 * image_size), (2 * image_size, image_size)]


@torch.inference_mode()
def check_parity(model: nn.Module, onnx_path: Path, photos: list[Image.Image], image_size: int) -> dict[str, float]:
    """Largest |logit difference| of onnxruntime against PyTorch (fp32) per input size, on `photos` resized to
    each size as one batch; raises ValueError past PARITY_TOLERANCE."""
    packaged, (session, _) = Packaged(model.float()).eval(), load_onnx(onnx_path)
    found = {}
    for height, width in parity_sizes(image_size):
        batch = np.stack([np.asarray(p.resize((width, height), Image.Resampling.BILINEAR)) for p in photos])
        expected = packaged(torch.from_numpy(batch)).numpy()
        found[f"{height}x{width}"] = diff = float(np.abs(session.logits(batch) - expected).max())
        if not diff <= PARITY_TOLERANCE:
            raise PetsegError(f"{onnx_path}: logits differ from PyTorch's by {diff:.2e} at {height}x{width} px "
                             f"(tolerance {PARITY_TOLERANCE:.0e})")
    return found


def parity_photos(folder: Path | None, count: int = PARITY_PHOTOS) -> tuple[list[Image.Image], str]:
    """The first `count` photos of `folder` (sorted), upright, and where they came from; seeded noise
    images where there is no such folder."""
    if folder is not None and Path(folder).is_dir():
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[:count]
        if paths:
            return [decode_image(p, upright=True) for p in paths], f"{len(paths)} photos of {folder}"
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)) for _ in range(count)]
    return noise, f"{count} noise images (no photo folder)"
