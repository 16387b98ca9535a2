"""Scoring checkpoints: predictions over a split, per-image confusion counts, the metrics JSON."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from petseg.lib.augment import normalize
from petseg.lib.data import Split, decode_trimap, load_pair, pair_paths, read_split_list, trimap_to_mask
from petseg.lib.device import autocast
from petseg.lib.images import upscale_mask
from petseg.lib.metrics import confusion_per_image, dice_score, summarize, to_confusion
from petseg.lib.models import count_parameters


@torch.inference_mode()
def predict_probabilities(model: nn.Module, images: np.ndarray, batch_size: int, channels_last: bool = True,
                          tta_hflip: bool = False, amp: bool = False) -> tuple[torch.Tensor, float]:
    """Sigmoid probabilities (N, H, W) for uint8 photos, and the seconds spent in the model.

    With `tta_hflip`, the mean of the probabilities of each photo and of its mirror image (mirrored back);
    with `amp`, the model runs under autocast, as in training (`train.autocast`).
    """
    device = next(model.parameters()).device
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(memory_format=memory_format)
    out, seconds = [], 0.0
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.array(images[start:start + batch_size])).permute(0, 3, 1, 2)  # a copy: memmaps are read-only
        batch = normalize(batch.to(device)).contiguous(memory_format=memory_format)
        begin = time.perf_counter()
        with autocast(device, amp):
            probability = torch.sigmoid(model(batch).float())
            if tta_hflip:
                mirrored = torch.sigmoid(model(batch.flip(-1)).float()).flip(-1)
                probability = (probability + mirrored) / 2
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - begin
        out.append(probability[:, 0].cpu())
    return torch.cat(out), seconds


def bootstrap_dice(per_image: torch.Tensor, samples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile interval of the dataset-level Dice, resampling the test images with replacement."""
    counts = per_image.numpy().astype(np.int64)
    picks = np.random.default_rng(seed).integers(0, len(counts), (samples, len(counts)))
    tp, fp, fn = (counts[:, k][picks].sum(1) for k in range(3))
    denominator = 2 * tp + fp + fn
    dice = np.where(denominator == 0, 1.0, 2 * tp / np.maximum(denominator, 1))
    tail = (1 - confidence) / 2
    return float(np.quantile(dice, tail)), float(np.quantile(dice, 1 - tail))


def original_resolution_counts(probabilities: torch.Tensor, stems: list[str], raw_dir: Path,
                               threshold: float) -> torch.Tensor:
    """(N, 4) confusion counts of the predictions resized back to each trimap's own size."""
    counts = []
    for probability, stem in zip(probabilities.numpy(), stems):
        truth = trimap_to_mask(decode_trimap(pair_paths(raw_dir, stem)[1]))
        pred = upscale_mask(probability, (truth.shape[1], truth.shape[0]), threshold)
        counts.append(confusion_per_image(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None] > 0))
    return torch.cat(counts)


SPECIES = {"1": "cat", "2": "dog"}  # the SPECIES column of list.txt


def pet_breeds(stems: list[str], list_file: Path | None) -> dict[str, tuple[str, str]]:
    """Each stem's (breed, species), from the official list.txt (`Stem CLASS-ID SPECIES BREED-ID` lines).

    A breed is a class id, named after its stems (`Great_Pyrenees_12` -> `Great_Pyrenees`). A stem that
    list.txt does not hold is named by itself, and is a cat when it starts with a capital (the list's own rule).
    """
    listed = {}
    if list_file is not None and Path(list_file).is_file():
        for line in Path(list_file).read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and not line.startswith("#"):
                listed[fields[0]] = (fields[1], SPECIES.get(fields[2], fields[2]))
    names = {}
    for stem in sorted(listed):  # the class's name: that of its first stem
        names.setdefault(listed[stem][0], stem.rsplit("_", 1)[0])
    out = {}
    for stem in stems:
        if stem in listed:
            out[stem] = (names[listed[stem][0]], listed[stem][1])
        else:
            out[stem] = (stem.rsplit("_", 1)[0], "cat" if stem[:1].isupper() else "dog")
    return out


def dice_by_group(counts: torch.Tensor, groups: list[str]) -> dict[str, tuple[float, int]]:
    """{group: (Dice over the summed counts of its images, number of images)}, in sorted group order."""
    labels = np.array(groups)
    return {group: (dice_score(to_confusion(counts[torch.from_numpy(labels == group)])), groups.count(group))
            for group in sorted(set(groups))}


def breed_table(counts: torch.Tensor, stems: list[str], breeds: dict[str, tuple[str, str]]) -> list[dict]:
    """One row per breed (cats, then dogs, by name): breed, species, Dice over its test pixels, n_images."""
    species_of = {breed: species for breed, species in breeds.values()}
    per_breed = dice_by_group(counts, [breeds[stem][0] for stem in stems])
    order = sorted(per_breed, key=lambda breed: (species_of[breed], breed.lower()))
    return [{"breed": breed, "species": species_of[breed], "dice": per_breed[breed][0], "n_images": per_breed[breed][1]}
            for breed in order]


def evaluate_model(model: nn.Module, split: Split, threshold: float, batch_size: int, raw_dir: Path | None = None,
                   bootstrap: dict | None = None, tta_hflip: bool = False,
                   amp: bool = False) -> tuple[dict, list[dict], list[dict]]:
    """The evaluate.json entry of one model on one split, each image's own Dice, and the Dice per breed.

    With `raw_dir`, Dice is also scored at each photo's original resolution (trimaps unresized) and per
    species (`dice_cat`, `dice_dog`) and breed (from `raw_dir`/annotations/list.txt; no breeds without it);
    with `bootstrap` ({samples, confidence, seed}), a percentile interval of the Dice over images.
    `inference_ms_per_image` includes the mirrored pass when `tta_hflip` is on.
    """
    probabilities, seconds = predict_probabilities(model, split.images, batch_size, tta_hflip=tta_hflip, amp=amp)
    counts = confusion_per_image(probabilities > threshold, torch.from_numpy(np.array(split.masks)) > 0)
    per_image = [{"stem": stem, "dice": dice_score(to_confusion(row))} for stem, row in zip(split.stems, counts)]
    summary, breeds = summarize(counts), []
    if bootstrap:
        summary["dice_ci_low"], summary["dice_ci_high"] = bootstrap_dice(counts, **bootstrap)
    if raw_dir is not None:
        summary["dice_original_resolution"] = dice_score(to_confusion(
            original_resolution_counts(probabilities, split.stems, raw_dir, threshold)))
        pets = pet_breeds(split.stems, Path(raw_dir) / "annotations" / "list.txt")
        per_species = dice_by_group(counts, [pets[stem][1] for stem in split.stems])
        for species in SPECIES.values():  # null for a species the split does not hold
            summary[f"dice_{species}"] = per_species[species][0] if species in per_species else None
        breeds = breed_table(counts, split.stems, pets)
        for row in per_image:
            row["breed"], row["species"] = pets[row["stem"]]
    summary |= {"parameters": count_parameters(model),
                "inference_ms_per_image": round(1000 * seconds / len(split.images), 2)}
    return summary, per_image, breeds


def load_folder(folder: Path, image_size: int, list_name: str | None = None) -> Split:
    """Any folder in the official layout as a Split: the stems of a list file, or every pair present."""
    folder = Path(folder)
    if list_name:
        stems = sorted(set(read_split_list(folder / "annotations" / list_name)))
    else:
        stems = sorted(p.stem for p in (folder / "annotations" / "trimaps").glob("*.png")
                       if not p.name.startswith("._") and pair_paths(folder, p.stem)[0].exists())
    if not stems:
        raise ValueError(f"{folder}: no image/trimap pairs (expected images/*.jpg and annotations/trimaps/*.png)")
    pairs = [load_pair(*pair_paths(folder, stem), image_size)[:2] for stem in stems]
    return Split(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), stems)
