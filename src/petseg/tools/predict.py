"""`petseg predict`: masks and overlays for new photos, with a checkpoint or an ONNX model (torch-free)."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = ("masks for new photos of any size or format, as a viewer shows them (EXIF orientation), with the "
        "threshold and TTA the checkpoint records. Example: petseg predict my_cat.jpg photos/ --model "
        "models/unet.pt --out predictions/")
PARAMS = "never"  # the model file records its threshold and TTA


def load_model(path: Path):
    """An ONNX model (onnxruntime; no torch imported on this path) or a PyTorch checkpoint, and its metadata."""
    if path.suffix.lower() == ".onnx":
        from petseg.lib.onnx_model import load_onnx
        return load_onnx(path)
    try:
        from petseg.lib.checkpoint import load_checkpoint
    except ModuleNotFoundError as err:  # an install for ONNX models only
        raise ValueError(f"{path}: a PyTorch checkpoint needs {err.name} (pip install petseg); an ONNX "
                         "model made by petseg export needs only onnxruntime") from None
    return load_checkpoint(path)


def run(args, params) -> str:
    from petseg.lib.photos import BATCH_SIZE, collect_photos, predict_photos, recorded_settings
    model, meta = load_model(args.model)
    p = recorded_settings(meta, args.model)
    photos = collect_photos(args.photos)  # every input checked before any work
    if args.model.suffix.lower() == ".onnx":
        amp = False
        print("petseg predict: fp32, onnxruntime on the CPU", file=sys.stderr, flush=True)
    else:
        from petseg.lib.device import announce_device
        device, amp = announce_device("auto", "predict")
        model = model.to(device)
    written, skipped = predict_photos(model, meta["image_size"], photos, args.out, args.batch_size or BATCH_SIZE,
                                      p["threshold"], p["tta_hflip"], amp)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not written and skipped:
        raise ValueError(f"none of the {len(skipped)} photos could be read")
    return f"wrote masks and overlays of {len(written)} photos to {args.out}; skipped {len(skipped)}"


def add_arguments(p) -> None:
    p.add_argument("photos", type=Path, nargs="+", metavar="PHOTO_OR_FOLDER", help="photos, or folders searched "
                   "for photo files")
    p.add_argument("--model", type=Path, required=True, help="a checkpoint, e.g. models/unet.pt, or an ONNX model "
                   "made by petseg export, e.g. models/unet.onnx (runs with onnxruntime; no torch needed)")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>_mask.png and <name>_overlay.png "
                   "(photos of one name in several folders keep their folders under it)")
    p.add_argument("--batch-size", type=int, help="photos per batch (default: 16)")
