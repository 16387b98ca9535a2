"""`petseg predict`: masks and overlays for new photos, with a checkpoint or an ONNX model (torch-free)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.core.limits import MAX_BATCH_SIZE

HELP = ("masks for new photos of any size or format, as a viewer shows them (EXIF orientation). Threshold and "
        "TTA: an ONNX model's own, else params.yaml's where there is one, else its defaults. Example: petseg "
        "predict my_cat.jpg photos/ --model models/unet.onnx --out predictions/")
PARAMS = "never"  # an ONNX model records its threshold and TTA; a checkpoint's are read in chosen_settings


def load_model(path: Path):
    """An ONNX model (onnxruntime; no torch imported on this path) or a PyTorch checkpoint, and its metadata."""
    if path.suffix.lower() == ".onnx":
        from petseg.inference.onnx_model import load_onnx
        return load_onnx(path)
    try:
        from petseg.models.checkpoint import load_checkpoint
    except ModuleNotFoundError as err:  # an install for ONNX models only
        raise PetsegError(f"{path}: a PyTorch checkpoint needs {err.name} (pip install petseg); an ONNX "
                          "model made by petseg export needs only onnxruntime") from None
    return load_checkpoint(path)


def chosen_settings(args, meta: dict):
    """Threshold and TTA: the flags; else an ONNX model's record; else, for a checkpoint, the project's
    params.yaml (--params) where there is one, or the defaults params.yaml ships with."""
    from dataclasses import replace

    from petseg.inference import settings as inference
    if args.model.suffix.lower() == ".onnx":
        settings = inference.from_record(meta, args.model)
    elif (args.params or Path("params.yaml")).is_file():
        from petseg.core.config import load_params
        settings = inference.from_params(load_params(args.params or Path("params.yaml")))
    else:
        settings = inference.DEFAULTS
    if args.threshold is not None and not 0 < args.threshold < 1:  # nan and inf too
        raise PetsegError(f"--threshold {args.threshold}: a threshold is a number between 0 and 1")
    if args.batch_size is not None and not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise PetsegError(f"--batch-size {args.batch_size}: takes 1 to {MAX_BATCH_SIZE} photos")
    changes = {"threshold": args.threshold, "tta_hflip": args.tta_hflip, "batch_size": args.batch_size}
    return replace(settings, **{key: value for key, value in changes.items() if value is not None})


def run(args, params) -> str:
    from petseg.inference.photos import check_out_dir, collect_photos, predict_photos
    check_out_dir(args.out, args.photos)
    model, meta = load_model(args.model)
    settings = chosen_settings(args, meta)
    photos = collect_photos(args.photos)  # every input checked before any work
    precision = None
    if args.model.suffix.lower() == ".onnx":
        print("petseg predict: fp32, onnxruntime on the CPU", file=sys.stderr, flush=True)
    else:
        from petseg.core.device import announce, best_device, recorded_precision
        device = best_device()
        precision = recorded_precision(meta, device)
        announce("predict", device, precision)
        model = model.to(device)
    print(f"petseg predict: threshold {settings.threshold:g}, flip TTA {'on' if settings.tta_hflip else 'off'}",
          file=sys.stderr, flush=True)
    written, skipped = predict_photos(model, meta["image_size"], photos, args.out, settings, precision)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not written and skipped:
        raise PetsegError(f"none of the {len(skipped)} photos could be used (each skipped above)")
    noun = "photo" if len(written) == 1 else "photos"
    return f"wrote masks and overlays of {len(written)} {noun} to {args.out}; skipped {len(skipped)}"


def add_arguments(p) -> None:
    p.add_argument("photos", type=Path, nargs="+", metavar="PHOTO_OR_FOLDER", help="photos, or folders searched "
                   "for photo files")
    p.add_argument("--model", type=Path, required=True, help="a checkpoint, e.g. models/unet.pt, or an ONNX model "
                   "made by petseg export, e.g. models/unet.onnx (runs with onnxruntime; no torch needed)")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>_mask.png and <name>_overlay.png "
                   "(photos of one name in several folders keep their folders under it)")
    p.add_argument("--batch-size", type=int, help="photos per batch (default: evaluate.batch_size, 16)")
    p.add_argument("--threshold", type=float, help="pet where the sigmoid is over this (default: as above)")
    p.add_argument("--tta-hflip", action=argparse.BooleanOptionalAction, help="average with the mirror image's "
                   "prediction (default: as above)")
