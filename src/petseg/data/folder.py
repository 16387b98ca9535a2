"""Any folder in the official layout (images/, annotations/trimaps/, list files) as a split to score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from petseg.core.errors import PetsegError
from petseg.data.arrays import Split
from petseg.data.decode import BadFile, load_pair
from petseg.data.splits import pair_paths, read_split_list


def load_folder(folder: Path, image_size: int, list_name: str | None = None) -> tuple[Split, list[dict]]:
    """Any folder in the official layout as a Split (the stems of a list file, or every pair present), and the
    pairs that could not be used, with the reason."""
    folder = Path(folder)
    if list_name:
        stems = sorted(set(read_split_list(folder / "annotations" / list_name)))
    else:
        stems = sorted(p.stem for p in (folder / "annotations" / "trimaps").glob("*.png")
                       if not p.name.startswith("._") and pair_paths(folder, p.stem)[0].exists())
    pairs, kept, skipped = [], [], []
    for stem in stems:
        try:
            pairs.append(load_pair(*pair_paths(folder, stem), image_size)[:2])
            kept.append(stem)
        except BadFile as err:
            skipped.append({"stem": stem, "split": list_name or "folder", "reason": str(err)})
    if not pairs:
        raise PetsegError(f"{folder}: no usable image/trimap pairs (expected images/*.jpg and "
                          f"annotations/trimaps/*.png; {len(skipped)} unusable)")
    return Split(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), kept), skipped
