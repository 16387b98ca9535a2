"""Scoring a model on a split: per-image confusion counts and boundary IoU, the metrics JSON entry, the
Dice per breed and species, the bootstrap interval and the reference's protocol."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from petseg.core.device import Precision
from petseg.core.metrics import (
    Confusion,
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


def dice_of(counts: pd.DataFrame) -> pd.Series:
    """The Dice of each row's tp, fp, fn (1 where prediction and truth are both empty)."""
    denominator = 2 * counts.tp + counts.fp + counts.fn
    return (2 * counts.tp / denominator).where(denominator > 0, 1.0)


def image_table(stems: list[str], counts: torch.Tensor, edges: torch.Tensor,
                pets: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per image: stem, confusion counts (tp, fp, fn, tn), Dice and boundary IoU; with `pets`
    ({stem: (breed, species)}), its breed and species."""
    frame = pd.DataFrame(counts.numpy(), columns=[field.name for field in fields(Confusion)])
    frame.insert(0, "stem", stems)
    frame["dice"], frame["boundary_iou"] = dice_of(frame), edges.double().numpy()
    if pets is not None:
        frame["breed"], frame["species"] = [pets[stem][0] for stem in stems], [pets[stem][1] for stem in stems]
    return frame


def dice_by(images: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of `column` (breed, species): the Dice over the pooled counts of its images, and their number."""
    groups = images.groupby(column)
    return pd.DataFrame({"dice": dice_of(groups[["tp", "fp", "fn"]].sum()), "n_images": groups.size()})


def breed_table(images: pd.DataFrame) -> pd.DataFrame:
    """One row per breed (cats, then dogs, by name): breed, species, Dice over its test pixels, n_images."""
    table = dice_by(images, "breed").join(images.groupby("breed")["species"].first()).reset_index()
    table = table.sort_values(["species", "breed"], key=lambda column: column.str.lower(), ignore_index=True)
    return table[["breed", "species", "dice", "n_images"]]


def evaluate_model(model: nn.Module, split: Split, settings: Settings, precision: Precision,
                   raw_dir: Path | None = None, bootstrap: dict | None = None,
                   skipped: list[dict] = ()) -> tuple[dict, pd.DataFrame, pd.DataFrame, float]:
    """The evaluate.json entry of one model on one split, each image's own row, the Dice per breed, and the
    seconds spent in the model (the mirrored pass included when TTA is on; a time, so not in the entry).

    With `raw_dir`, Dice is also scored at each photo's original resolution (trimaps unresized), per species
    (`dice_cat`, `dice_dog`) and breed (from `raw_dir`/annotations/list.txt), and by the reference's protocol
    in the order of the list files; with `bootstrap` ({samples, confidence, seed}), a percentile interval of
    the Dice over images. `skipped` (stem, reason) are the split's photos that could not be scored.
    """
    probabilities, seconds = predict_probabilities(model, split.images, settings.batch_size,
                                                   tta_hflip=settings.tta_hflip, precision=precision)
    predicted, truth = probabilities > settings.threshold, torch.from_numpy(np.array(split.masks)) > 0
    counts = confusion_per_image(predicted, truth)
    edge = boundary_width(split.image_size, split.image_size)
    edges = boundary_iou(predicted, truth, edge)
    pets = pet_breeds(split.stems, Path(raw_dir) / "annotations" / "list.txt") if raw_dir is not None else None
    images = image_table(split.stems, counts, edges, pets)
    summary, breeds = summarize(counts), pd.DataFrame(columns=["breed", "species", "dice", "n_images"])
    summary["boundary_iou"] = float(edges.double().mean())
    summary["boundary_width_px"] = edge
    if bootstrap:
        summary["dice_ci_low"], summary["dice_ci_high"] = bootstrap_dice(counts, **bootstrap)
    if raw_dir is not None:
        order = list_order(raw_dir, split.stems)
        summary["reference_dice"] = mean_batch_dice(counts[torch.as_tensor(order)], REFERENCE_BATCH)
        summary["dice_original_resolution"] = dice_score(to_confusion(
            original_resolution_counts(probabilities, split.stems, raw_dir, settings.threshold)))
        per_species = dice_by(images, "species")["dice"]
        for species in SPECIES.values():  # null for a species the split does not hold
            summary[f"dice_{species}"] = float(per_species[species]) if species in per_species else None
        breeds = breed_table(images)
    summary |= {"n_skipped": len(skipped), "skipped": [{"stem": row["stem"], "reason": row["reason"]} for row in skipped],
                "parameters": count_parameters(model)}
    per_image = images.drop(columns=["tp", "fp", "fn", "tn"])  # stem, dice, boundary_iou (, breed, species)
    return summary, per_image, breeds, seconds
