"""Masks for new photos of any size, shape or format, at each photo's own resolution.

Torch-free at import: with an ONNX model (`petseg.lib.onnx_model`) nothing here imports torch; a PyTorch
model brings in `petseg.lib.scoring` when it is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from petseg.lib.images import decode_image, overlay, save_png, upscale_mask

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
GRID = 32  # the models downsample 5 times: inputs are multiples of 32
# Longer/shorter side up to which a photo is squashed to the square training size, as in training. On 4:1
# crops of the sample's test photos, keeping the aspect scored 0.761 against 0.708 (UNet; the ResNet34-UNet
# 0.699 against 0.806); on the whole photos squashing scored 0.833 against 0.813 (benchmarks/predict_aspect.py).
MAX_SQUASH = 2.0
BATCH_SIZE = 16  # photos per inference batch where no params.yaml says (evaluate.batch_size)


def recorded_settings(meta: dict, path: Path) -> dict:
    """Threshold, TTA and batch size for a model used outside a project: as its checkpoint records them."""
    if "threshold" not in meta or "tta_hflip" not in meta:
        raise ValueError(f"{path}: records no threshold and TTA (an older checkpoint); run where its params.yaml "
                         "is, or give --params")
    return {"threshold": meta["threshold"], "tta_hflip": meta["tta_hflip"], "batch_size": BATCH_SIZE}


def collect_photos(inputs: list[Path]) -> list[Path]:
    """The files given, and the photo files (by suffix) inside the folders given, in order, each once."""
    photos = []
    for path in map(Path, inputs):
        if path.is_dir():
            photos += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        elif path.exists():
            photos.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such photo or folder")
    seen = set()
    return [p for p in photos if not (p.resolve() in seen or seen.add(p.resolve()))]


def output_names(photos: list[Path]) -> dict[Path, str]:
    """Each photo's output name (without _mask.png): its stem where that is unique; photos that share a stem
    keep their folders relative to their common folder (a/pet, b/pet), and their suffix where even that
    is shared (pet_jpg, pet_png). No two photos get one name."""
    names = {photo: photo.stem for photo in photos}
    for stem in {s for s in names.values() if list(names.values()).count(s) > 1}:
        clash = [p for p in photos if p.stem == stem]
        common = Path(*[parts[0] for parts in zip(*(p.resolve().parent.parts for p in clash))
                        if len(set(parts)) == 1])
        relative = {p: p.resolve().parent.relative_to(common) / p.stem for p in clash}
        for p in clash:
            shared = sum(r == relative[p] for r in relative.values()) > 1
            names[p] = relative[p].as_posix() + (f"_{p.suffix.lstrip('.').lower()}" if shared else "")
    return names


def model_input(photo: Image.Image, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The photo at the model's scale, and the (height, width) of the photo inside the array.

    Up to MAX_SQUASH (as the training photos were) it is squashed to the square training size; a wider or
    taller one keeps its aspect: shorter side `image_size` px, padded (mirrored) to a multiple of 32.
    """
    if max(photo.size) <= MAX_SQUASH * min(photo.size):
        return np.asarray(photo.resize((image_size, image_size), Image.Resampling.BILINEAR)), (image_size, image_size)
    scale = image_size / min(photo.size)
    width, height = (max(GRID, round(side * scale)) for side in photo.size)
    array = np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR))
    pad = [(0, -height % GRID), (0, -width % GRID), (0, 0)]
    return np.pad(array, pad, mode="symmetric"), (height, width)


def probabilities_of(model, batch_size: int, tta_hflip: bool, amp: bool):
    """images -> (N, H, W) probabilities: an ONNX model's own (`OnnxModel.probabilities`, fp32), or a PyTorch
    module's through `petseg.lib.scoring.predict_probabilities` (`amp`: autocast, as in training)."""
    if hasattr(model, "probabilities"):
        return lambda images: model.probabilities(images, batch_size, tta_hflip=tta_hflip)
    from petseg.lib.scoring import predict_probabilities
    return lambda images: predict_probabilities(model, images, batch_size, tta_hflip=tta_hflip, amp=amp)[0].numpy()


def predict_photos(model, image_size: int, photos: list[Path], out_dir: Path, batch_size: int,
                   threshold: float, tta_hflip: bool = False,
                   amp: bool = False) -> tuple[list[Path], list[str]]:
    """Write <name>_mask.png (0/255) and <name>_overlay.png per photo (names from `output_names`), upright as
    a viewer shows the photo (EXIF orientation); returns the masks written and the skipped reasons.

    `model`: a PyTorch module, or an `OnnxModel` (then `amp` does not apply: onnxruntime computes in fp32).
    """
    written, skipped, names = [], [], output_names(photos)
    probabilities_for = probabilities_of(model, batch_size, tta_hflip, amp)
    for start in range(0, len(photos), batch_size):
        shapes: dict[tuple, list] = {}  # photos of one input shape go through the model together
        for path in photos[start:start + batch_size]:
            try:
                photo = decode_image(path, upright=True)
            except (OSError, SyntaxError, ValueError) as err:
                skipped.append(f"{path}: not a readable image ({err})")
                continue
            array, inside = model_input(photo, image_size)
            shapes.setdefault(array.shape, []).append((path, photo, array, inside))
        for group in shapes.values():
            probabilities = probabilities_for(np.stack([g[2] for g in group]))
            for (path, photo, _, (height, width)), probability in zip(group, probabilities):
                # probabilities, not the thresholded mask, are scaled back: smoother edges at full size
                mask = upscale_mask(probability[:height, :width], photo.size, threshold)
                base = out_dir / names[path]
                save_png(Image.fromarray((mask * 255).astype(np.uint8)), base.with_name(base.name + "_mask.png"))
                save_png(Image.fromarray(overlay(np.asarray(photo), mask)), base.with_name(base.name + "_overlay.png"))
                written.append(base.with_name(base.name + "_mask.png"))
    return written, skipped
