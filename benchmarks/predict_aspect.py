"""How `petseg predict` should feed photos of extreme aspect to a model: Dice at the photo's own size.

For each test photo of a folder in the official layout, a wide crop (full width, a quarter of it high)
and a tall crop (full height, a quarter of it wide), both centred on the pet, are scored three ways:
squashed to the square training size (the old predict), and kept in aspect with the shorter side
(or the area) at the training size, padded to a multiple of 32 (what predict does now: "short").

    python benchmarks/predict_aspect.py models/unet.pt data/raw [--ratio 4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from petseg.core.metrics import confusion_per_image, dice_score, to_confusion
from petseg.data.decode import decode_image, decode_trimap, trimap_to_mask
from petseg.data.splits import pair_paths, read_split_list
from petseg.inference.images import upscale_mask
from petseg.inference.predictor import predict_probabilities
from petseg.inference.settings import model_input
from petseg.models.checkpoint import load_checkpoint


def squash(photo: Image.Image, size: int):
    return np.asarray(photo.resize((size, size), Image.Resampling.BILINEAR)), (size, size)


def by_area(photo: Image.Image, size: int):
    area = size / (photo.size[0] * photo.size[1]) ** 0.5 * min(photo.size)  # the shorter side at equal area
    return model_input(photo, max(32, round(area)))


MODES = {"squash": squash, "short": model_input, "area": by_area}


def crops(photo: Image.Image, mask: np.ndarray, ratio: float) -> dict[str, tuple[Image.Image, np.ndarray]]:
    """Full-photo, wide and tall crops centred on the pet's bounding box."""
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.mean(), xs.mean()) if len(ys) else (mask.shape[0] / 2, mask.shape[1] / 2)
    w, h = photo.size
    out = {"full": (photo, mask)}
    band = max(1, round(w / ratio))
    top = int(np.clip(round(cy - band / 2), 0, max(0, h - band)))
    out["wide"] = (photo.crop((0, top, w, top + band)), mask[top:top + band])
    band = max(1, round(h / ratio))
    left = int(np.clip(round(cx - band / 2), 0, max(0, w - band)))
    out["tall"] = (photo.crop((left, 0, left + band, h)), mask[:, left:left + band])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("raw", type=Path, help="a folder in the official layout")
    parser.add_argument("--ratio", type=float, default=4.0)
    parser.add_argument("--list", default="test.txt")
    args = parser.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    tta, threshold = meta.get("tta_hflip", True), meta.get("threshold", 0.5)
    counts = {(kind, mode): [] for kind in ("full", "wide", "tall") for mode in MODES}
    stems = read_split_list(args.raw / "annotations" / args.list)
    for stem in stems:
        image_path, trimap_path = pair_paths(args.raw, stem)
        photo, truth = decode_image(image_path), trimap_to_mask(decode_trimap(trimap_path))
        for kind, (crop, crop_truth) in crops(photo, truth, args.ratio).items():
            for mode, prepare in MODES.items():
                array, (height, width) = prepare(crop, meta["image_size"])
                probability = predict_probabilities(model, array[None], 1, tta_hflip=tta)[0][0].numpy()
                pred = upscale_mask(probability[:height, :width], crop.size, threshold)
                counts[(kind, mode)].append(confusion_per_image(torch.from_numpy(pred)[None],
                                                                torch.from_numpy(crop_truth)[None] > 0))
    result = {f"{kind} {mode}": round(dice_score(to_confusion(torch.cat(rows))), 4)
              for (kind, mode), rows in counts.items()}
    print(json.dumps({"checkpoint": str(args.checkpoint), "photos": len(stems), "ratio": args.ratio,
                      "dice": result}, indent=2))
    print(f"scored {len(stems)} photos x 3 crops x {len(MODES)} ways", file=sys.stderr)


if __name__ == "__main__":
    main()
