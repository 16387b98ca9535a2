"""Scoring a model on a split: per-image confusion counts and boundary IoU, the metrics JSON entry, the
Dice per breed and species, the bootstrap interval and the reference's protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from petseg.core.device import Precision
from petseg.core.metrics import (
    boundary_iou,
    boundary_width,
    confusion_per_image,
    dice_score,
    mean_batch_dice,
    summarize,
    to_confusion,
)
from petseg.data.arrays import Split
from petseg.data.breeds import SPECIES, pet_breeds
from petseg.data.decode import decode_trimap, trimap_to_mask
from petseg.data.splits import list_order, pair_paths
from petseg.inference.images import upscale_mask
from petseg.inference.predictor import predict_probabilities
from petseg.inference.settings import Settings
from petseg.models.build import count_parameters

REFERENCE_BATCH = 16  # the reference's protocol: the mean Dice of batches of 16 photos, in the list's order


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


def evaluate_model(model: nn.Module, split: Split, settings: Settings, precision: Precision,
                   raw_dir: Path | None = None, bootstrap: dict | None = None,
                   skipped: list[dict] = ()) -> tuple[dict, list[dict], list[dict]]:
    """The evaluate.json entry of one model on one split, each image's own row, and the Dice per breed.

    With `raw_dir`, Dice is also scored at each photo's original resolution (trimaps unresized), per species
    (`dice_cat`, `dice_dog`) and breed (from `raw_dir`/annotations/list.txt), and by the reference's protocol
    in the order of the list files; with `bootstrap` ({samples, confidence, seed}), a percentile interval of
    the Dice over images. `skipped` (stem, reason) are the split's photos that could not be scored.
    `inference_ms_per_image` includes the mirrored pass when TTA is on.
    """
    probabilities, seconds = predict_probabilities(model, split.images, settings.batch_size,
                                                   tta_hflip=settings.tta_hflip, precision=precision)
    predicted, truth = probabilities > settings.threshold, torch.from_numpy(np.array(split.masks)) > 0
    counts = confusion_per_image(predicted, truth)
    edge = boundary_width(split.image_size, split.image_size)
    edges = boundary_iou(predicted, truth, edge)
    per_image = [{"stem": stem, "dice": dice_score(to_confusion(row)), "boundary_iou": float(b)}
                 for stem, row, b in zip(split.stems, counts, edges)]
    summary, breeds = summarize(counts), []
    summary["boundary_iou"] = float(edges.double().mean())
    summary["boundary_width_px"] = edge
    if bootstrap:
        summary["dice_ci_low"], summary["dice_ci_high"] = bootstrap_dice(counts, **bootstrap)
    if raw_dir is not None:
        order = list_order(raw_dir, split.stems)
        summary["reference_dice"] = mean_batch_dice(counts[torch.as_tensor(order)], REFERENCE_BATCH)
        summary["dice_original_resolution"] = dice_score(to_confusion(
            original_resolution_counts(probabilities, split.stems, raw_dir, settings.threshold)))
        pets = pet_breeds(split.stems, Path(raw_dir) / "annotations" / "list.txt")
        per_species = dice_by_group(counts, [pets[stem][1] for stem in split.stems])
        for species in SPECIES.values():  # null for a species the split does not hold
            summary[f"dice_{species}"] = per_species[species][0] if species in per_species else None
        breeds = breed_table(counts, split.stems, pets)
        for row in per_image:
            row["breed"], row["species"] = pets[row["stem"]]
    summary |= {"n_skipped": len(skipped), "skipped": [row["stem"] for row in skipped],
                "parameters": count_parameters(model),
                "inference_ms_per_image": round(1000 * seconds / len(split.images), 2)}
    return summary, per_image, breeds
