"""ONNX models written by `petseg export`, run by onnxruntime: numpy, Pillow and onnxruntime only, no torch.

The graph takes uint8 RGB photos as NHWC, (batch, height, width, 3), height and width multiples of 32, and
returns the logits (batch, 1, height, width); the ImageNet normalisation is inside it. What predict needs
beside the weights (model, image size, threshold, TTA) travels in the file's metadata_props, under METADATA_KEY.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from petseg.core.errors import PetsegError
from petseg.models.spec import MODELS, check_image_size

METADATA_KEY = "petseg"  # metadata_props key: JSON of the checkpoint's metadata
INPUT_NAME, OUTPUT_NAME = "images", "logits"
INPUT_LAYOUT = "uint8 RGB, NHWC (batch, height, width, 3); height and width multiples of 32"


class ModelFileError(PetsegError):
    """A missing, foreign or unreadable model file; the message is one line naming the file."""


def sigmoid(logits: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for very negative logits: 1 / inf = 0, as wanted
        return (1 / (1 + np.exp(-logits.astype(np.float32)))).astype(np.float32)


class OnnxModel:
    """An onnxruntime session of a petseg ONNX model, with the `probabilities` that predict uses."""

    def __init__(self, session, path: Path):
        self.session, self.path = session, path

    def logits(self, images: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) float32 logits of uint8 (N, H, W, 3) photos; a graph that fails or returns another shape
        is the model file's fault, named in one line."""
        try:
            logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images, dtype=np.uint8)})[0]
        except Exception as err:  # onnxruntime's own exception types (Fail, RuntimeException...) share no base
            raise ModelFileError(f"{self.path}: onnxruntime failed running it on {images.shape} photos "
                                 f"({' '.join(str(err).split())[:160]})") from None
        expected = (len(images), 1, *images.shape[1:3])
        if not isinstance(logits, np.ndarray) or logits.shape != expected or logits.dtype.kind != "f":
            raise ModelFileError(f"{self.path}: returned {getattr(logits, 'dtype', type(logits).__name__)} "
                                 f"{getattr(logits, 'shape', '')} logits for {images.shape} photos, not float "
                                 f"{expected}: not petseg's graph")
        return logits

    def probabilities(self, images: np.ndarray, batch_size: int, tta_hflip: bool = False) -> np.ndarray:
        """(N, H, W) sigmoid probabilities, as `petseg.inference.predictor.predict_probabilities` computes them: with
        `tta_hflip`, the mean of those of each photo and of its mirror image (mirrored back)."""
        out = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            probability = sigmoid(self.logits(batch))
            if tta_hflip:
                mirrored = sigmoid(self.logits(batch[:, :, ::-1]))[..., ::-1]
                probability = (probability + mirrored) / 2
            out.append(probability[:, 0])
        return np.concatenate(out)


def load_onnx(path: Path) -> tuple[OnnxModel, dict]:
    """The model an ONNX file made by `petseg export` holds, and its metadata (as a checkpoint's)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ONNX model file")
    try:
        import onnxruntime
    except ImportError:
        raise ModelFileError(f"{path}: running an ONNX model needs onnxruntime (pip install onnxruntime, "
                             "or pip install 'petseg[onnx]')") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own exception types (InvalidProtobuf, Fail...) share no base
        raise ModelFileError(f"{path}: not an ONNX model onnxruntime can load "
                             f"({str(err).splitlines()[0][:160]})") from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ModelFileError(f"{path}: no {METADATA_KEY!r} metadata_props: not made by petseg export")
    try:
        meta = json.loads(raw)
        missing = [key for key in ("model", "image_size", "threshold", "tta_hflip") if key not in meta]
        if not isinstance(meta, dict):
            raise TypeError
    except (ValueError, TypeError, RecursionError):
        raise ModelFileError(f"{path}: its {METADATA_KEY!r} metadata_props is not petseg's JSON") from None
    if missing:
        raise ModelFileError(f"{path}: its {METADATA_KEY!r} metadata_props lacks {', '.join(missing)}")
    if not isinstance(meta["model"], str) or meta["model"] not in MODELS:
        raise ModelFileError(f"{path}: records model {str(meta['model'])[:40]!r}; petseg's are {', '.join(MODELS)}")
    check_image_size(meta["image_size"], path)
    if [i.name for i in session.get_inputs()] != [INPUT_NAME]:
        raise ModelFileError(f"{path}: takes {[i.name for i in session.get_inputs()]}, not petseg's {INPUT_NAME!r}")
    return OnnxModel(session, path), meta
