"""Model cards (Markdown), written by the export stage from the params and the pipeline's metrics only."""

from __future__ import annotations

from petseg.core.config import Params, Train
from petseg.inference.settings import MAX_SQUASH, Settings
from petseg.models.spec import MODELS, STRIDE

SOURCES = {
    "sample": "the sample of Oxford-IIIT Pet shipped in `data/sample` (photos CC BY-SA 4.0)",
    "full": "Oxford-IIIT Pet, the official archives",
    "folder": "a local copy of Oxford-IIIT Pet in the official layout (`data.folder`)",
}
AMP = {
    "auto": "`train.amp: auto`: bf16 autocast on a GPU or on a CPU with native bf16 (AMX, AVX512-BF16), "
            "fp32 otherwise",
    "on": "`train.amp: on`: bf16 autocast (fp16 on a GPU without bf16)",
    "off": "`train.amp: off`: fp32",
}
PRECISION = {"fp32": "trained in fp32", "bf16": "trained with bf16 autocast", "fp16": "trained with fp16 autocast"}
MEASURED = "## Measured by the pipeline"  # the machine-dependent part, last


def _dice(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _progressive(epochs: int, train: Train) -> list[str]:
    """The card's line on progressive resizing, where the model trained with it."""
    small = train.small_epochs(epochs)
    if not small:
        return []
    return [f"- Progressive resizing: the first {small} epochs on {train.progressive_size} px crops"]


def model_card(name: str, meta: dict, settings: Settings, params: Params, counts: dict, trained: dict, scores: dict,
               parity: dict[str, float], parity_source: str, tolerance: float) -> str:
    """The card of one model: `meta` from its checkpoint, `settings` the threshold and TTA its ONNX model records,
    `counts` from metrics/preprocess.json, `trained`
    from metrics/train_NAME.json, `scores` its entry of metrics/evaluate.json, `parity` from the export."""
    title, size, p = MODELS.get(name, name), meta["image_size"], params
    arch = ", ".join(f"{k} {v}" for k, v in meta["arch"].items())
    tuned = "set in params.yaml" if p.lr_for(name) is not None else "found by the tune stage"
    train = p.train_for(name)
    confidence = round(100 * p.evaluate.confidence)
    tta = "averaged with that of its mirror image (TTA), " if settings.tta_hflip else ""
    lines = [
        f"# {title}: model card",
        "",
        f"Binary segmentation of the pet (cat or dog) against the background in RGB photos, trained from scratch "
        f"by this project's DVC pipeline. Files: `models/{name}.pt` (PyTorch checkpoint) and `models/{name}.onnx` "
        "(ONNX, runs with onnxruntime and no PyTorch); see docs/models.md.",
        "",
        "## Model",
        "",
        f"- Architecture: {title} ({arch}), {scores['parameters']:,} parameters",
        f"- Input: an RGB photo at {size} x {size} px: photos up to {MAX_SQUASH:g}:1 are squashed to that square, "
        f"as in training; wider or taller ones keep their aspect (shorter side {size} px, padded to a multiple of {STRIDE}). The ONNX "
        "graph takes uint8 NHWC and normalises itself.",
        f"- Output: a logit per pixel; pet where its sigmoid, {tta}is over {settings.threshold:g}. The mask is "
        "scaled back to the photo's own size.",
        "",
        "## Data",
        "",
        f"- Source: {SOURCES.get(p.data.source, p.data.source)}",
        f"- Photos: {counts['train']} train, {counts['valid']} validation (a seeded {p.preprocess.valid_fraction:g} "
        f"of the official trainval list), {counts['test']} test (the official test list); {counts['skipped']} "
        "unusable ones skipped",
        f"- Resolution: squashed to {size} x {size} px",
        "",
        "## Training",
        "",
        f"- {trained['epochs']} epochs, kept the best validation epoch ({trained['best_epoch']}, validation Dice "
        f"{trained['best_valid_dice']:.4f})",
        f"- Learning rate {trained['lr']:.3g} ({tuned}), {train.scheduler} schedule, batch {train.batch_size}, "
        f"loss {train.dice_weight:g} x (1 - soft Dice) + {train.bce_weight:g} x BCE, seed {p.seed}",
        f"- Precision: {PRECISION.get(meta.get('precision', 'fp32'))} ({AMP.get(train.amp, train.amp)})",
        *_progressive(trained["epochs"], train),
        "",
        f"## Test results ({scores['n_images']} photos)",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| Dice (pixels of all test photos pooled) | {_dice(scores['dice'])} |",
    ]
    if "dice_ci_low" in scores:
        lines.append(f"| {confidence}% interval (bootstrap over photos, {p.evaluate.bootstrap_samples} "
                     f"resamples) | {_dice(scores['dice_ci_low'])} to {_dice(scores['dice_ci_high'])} |")
    for key, label in (("dice_original_resolution", "Dice at each photo's original resolution"),
                       ("dice_cat", "Dice, cats"), ("dice_dog", "Dice, dogs"),
                       ("mean_image_dice", "mean of the per-photo Dice"),
                       ("reference_dice", "the reference's protocol: mean Dice of batches of 16, in list order"),
                       ("boundary_iou", "boundary IoU (mean per photo)"), ("iou", "IoU"),
                       ("pixel_accuracy", "pixel accuracy")):
        if key in scores:
            lines.append(f"| {label} | {_dice(scores[key])} |")
    lines += [
        "",
        "## Known limits",
        "",
        "- One mask for all pets: several pets come out as one region, and people or other animals in the photo "
        "may be masked as pet; it was trained on photos of a single cat or dog of 37 breeds.",
        f"- Very wide or tall photos (beyond {MAX_SQUASH:g}:1) are predicted at their own aspect, which training never showed; "
        "panoramas and narrow crops score lower.",
        f"- Small: trained at {size} px on {counts['train']} photos; fine detail (whiskers, fur edges) is lost "
        "at that scale.",
        "",
        MEASURED,
        "",
        f"- ONNX against PyTorch (fp32, onnxruntime, {parity_source}): largest |logit difference| "
        + ", ".join(f"{diff:.1e} at {shape} px" for shape, diff in parity.items())
        + f" (tolerance {tolerance:.0e})",
    ]
    return "\n".join(lines) + "\n"
