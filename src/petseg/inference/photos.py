"""`petseg predict`'s work: masks and overlays for new photos of any size, shape or format, at each photo's
own resolution.

Torch-free at import: with an ONNX model (`petseg.inference.onnx_model`) nothing here imports torch; a PyTorch
model brings in `petseg.inference.predictor` when it is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from petseg.core.errors import PetsegError
from petseg.core.io import whole_outputs
from petseg.core.limits import MAX_ASPECT
from petseg.data.decode import PHOTO_SUFFIXES, BadFile, decode_image
from petseg.inference.images import overlay, save_png, upscale_mask
from petseg.inference.settings import Settings, model_input


def collect_photos(inputs: list[Path]) -> list[Path]:
    """The files given, and the photo files (by suffix) inside the folders given, in order, each once; none is an
    error."""
    photos = []
    for path in map(Path, inputs):
        if path.is_dir():
            photos += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        elif path.is_file():
            photos.append(path)
        elif path.exists():  # a fifo or a device would block or never end
            raise PetsegError(f"{path}: not a regular file or folder")
        else:
            raise FileNotFoundError(f"{path}: no such photo or folder")
    seen = set()
    photos = [p for p in photos if not (p.resolve() in seen or seen.add(p.resolve()))]
    if not photos:
        raise PetsegError(f"{', '.join(map(str, inputs))}: no photo files (by suffix: "
                          f"{', '.join(sorted(PHOTO_SUFFIXES))})")
    return photos


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
    return {p: "/".join(part if part.strip(".") else part.replace(".", "_") for part in name.split("/"))
            for p, name in names.items()}  # a photo named `..jpg` writes __mask.png, not ../out_mask.png


def probabilities_of(model, settings: Settings, precision=None):
    """images -> (N, H, W) probabilities: an ONNX model's own (`OnnxModel.probabilities`, fp32), or a PyTorch
    module's through `petseg.inference.predictor` (in `precision`, the one its checkpoint records)."""
    if hasattr(model, "probabilities"):
        return lambda images: model.probabilities(images, settings.batch_size, tta_hflip=settings.tta_hflip)
    from petseg.inference.predictor import predict_probabilities
    chosen = {} if precision is None else {"precision": precision}  # fp32 unless given
    return lambda images: predict_probabilities(model, images, settings.batch_size, tta_hflip=settings.tta_hflip,
                                                **chosen)[0].numpy()


def output_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """<name>_mask.png and <name>_overlay.png in `out_dir`."""
    return out_dir / f"{name}_mask.png", out_dir / f"{name}_overlay.png"


def check_out_dir(out_dir: Path, inputs: list[Path]) -> None:
    """Refuse an output that is a file, or a folder of photos given or inside one: the next run over that folder
    would read the masks and overlays as photos (and replace a photo named like an output)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise PetsegError(f"--out {out_dir}: is a file; give a folder for the masks and overlays")
    out = Path(os.path.realpath(out_dir))
    for folder in inputs:
        real = Path(os.path.realpath(folder))
        if Path(folder).is_dir() and (out == real or real in out.parents):
            raise PetsegError(f"--out {out_dir}: is inside the photo folder {folder}; its masks and overlays "
                              "would be read as photos by the next run: choose a folder outside it")


# photos up to this many pixels are kept from decoding to writing; larger ones are decoded again, so that a
# batch never holds more than one full-size large photo
KEEP_DECODED = 4_000_000


def predict_photos(model, image_size: int, photos: list[Path], out_dir: Path, settings: Settings,
                   precision=None) -> tuple[list[Path], list[str]]:
    """Write <name>_mask.png (0/255) and <name>_overlay.png per photo (names from `output_names`), upright as
    a viewer shows the photo (EXIF orientation); returns the masks written and the skipped reasons.

    Whole or nothing: every output goes to a temporary name first and all are renamed into place at the end,
    so a failure or Ctrl-C leaves `out_dir` as it was. An output that would replace a photo given is refused
    before any work. Photos over MAX_PHOTO_PIXELS or more elongated than MAX_ASPECT are skipped (listed);
    memory holds one batch of model inputs and one full-size photo at a time.

    `model`: a PyTorch module, or an `OnnxModel` (then `precision` does not apply: onnxruntime computes in fp32).
    """
    written, skipped, names = [], [], output_names(photos)
    probabilities_for = probabilities_of(model, settings, precision)
    with whole_outputs(photos) as outputs:
        for path in photos:  # every output checked before any work
            for final in output_paths(out_dir, names[path]):
                outputs.reserve(final)
        for start in range(0, len(photos), settings.batch_size):
            shapes: dict[tuple, list] = {}  # photos of one input shape go through the model together
            for path in photos[start:start + settings.batch_size]:
                try:
                    photo = decode_image(path, upright=True)
                except BadFile as err:
                    skipped.append(str(err))
                    continue
                if max(photo.size) > MAX_ASPECT * min(photo.size):
                    skipped.append(f"{path}: {photo.width}x{photo.height} px is more elongated than "
                                   f"{MAX_ASPECT}:1, the most predict takes")
                    continue
                array, inside = model_input(photo, image_size)
                kept = photo if photo.width * photo.height <= KEEP_DECODED else None
                shapes.setdefault(array.shape, []).append((path, kept, array, inside))
                del photo
            for group in shapes.values():
                probabilities = probabilities_for(np.stack([g[2] for g in group]))
                for (path, photo, _, (height, width)), probability in zip(group, probabilities):
                    photo = photo or decode_image(path, upright=True)
                    # probabilities, not the thresholded mask, are scaled back: smoother edges at full size
                    mask = upscale_mask(probability[:height, :width], photo.size, settings.threshold)
                    mask_path, overlay_path = output_paths(out_dir, names[path])
                    save_png(Image.fromarray((mask * 255).astype(np.uint8)), outputs.path(mask_path))
                    save_png(Image.fromarray(overlay(np.asarray(photo), mask)), outputs.path(overlay_path))
                    written.append(mask_path)
                    del photo, mask
    return written, skipped
