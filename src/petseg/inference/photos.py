"""`petseg predict`'s work: masks and overlays for new photos of any size, shape or format, at each photo's
own resolution.

Torch-free at import: with an ONNX model (`petseg.inference.onnx_model`) nothing here imports torch; a PyTorch
model brings in `petseg.inference.predictor` when it is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from petseg.data.decode import PHOTO_SUFFIXES, decode_image
from petseg.inference.images import overlay, save_png, upscale_mask
from petseg.inference.settings import Settings, model_input


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


def probabilities_of(model, settings: Settings, precision=None):
    """images -> (N, H, W) probabilities: an ONNX model's own (`OnnxModel.probabilities`, fp32), or a PyTorch
    module's through `petseg.inference.predictor` (in `precision`, the one its checkpoint records)."""
    if hasattr(model, "probabilities"):
        return lambda images: model.probabilities(images, settings.batch_size, tta_hflip=settings.tta_hflip)
    from petseg.inference.predictor import predict_probabilities
    chosen = {} if precision is None else {"precision": precision}  # fp32 unless given
    return lambda images: predict_probabilities(model, images, settings.batch_size, tta_hflip=settings.tta_hflip,
                                                **chosen)[0].numpy()


def predict_photos(model, image_size: int, photos: list[Path], out_dir: Path, settings: Settings,
                   precision=None) -> tuple[list[Path], list[str]]:
    """Write <name>_mask.png (0/255) and <name>_overlay.png per photo (names from `output_names`), upright as
    a viewer shows the photo (EXIF orientation); returns the masks written and the skipped reasons.

    `model`: a PyTorch module, or an `OnnxModel` (then `precision` does not apply: onnxruntime computes in fp32).
    """
    written, skipped, names = [], [], output_names(photos)
    probabilities_for = probabilities_of(model, settings, precision)
    for start in range(0, len(photos), settings.batch_size):
        shapes: dict[tuple, list] = {}  # photos of one input shape go through the model together
        for path in photos[start:start + settings.batch_size]:
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
                mask = upscale_mask(probability[:height, :width], photo.size, settings.threshold)
                base = out_dir / names[path]
                save_png(Image.fromarray((mask * 255).astype(np.uint8)), base.with_name(base.name + "_mask.png"))
                save_png(Image.fromarray(overlay(np.asarray(photo), mask)), base.with_name(base.name + "_overlay.png"))
                written.append(base.with_name(base.name + "_mask.png"))
    return written, skipped
