"""Stage `evaluate`: score the checkpoints on the test split (or the validation split, or any folder in the
official layout) and print the metrics JSON: Dice with a bootstrap interval, per breed, at original size."""

from __future__ import annotations

import json
from pathlib import Path

from petseg.lib.models import default_checkpoints

HELP = ("score checkpoints on the test split, or on any folder in the official layout (--folder), and print "
        "the metrics JSON")
PARAMS = "if present"  # outside a project: threshold and TTA as each checkpoint records them, no interval


def settings(params, meta: dict, path: Path) -> tuple[dict, dict | None]:
    """Threshold, TTA and batch size, and the bootstrap settings: from params.yaml in a project; outside one,
    threshold and TTA as the checkpoint records them, and no bootstrap interval."""
    from petseg.lib.photos import recorded_settings
    if params is None:
        return recorded_settings(meta, path), None
    p = params.evaluate
    return ({"threshold": p.threshold, "tta_hflip": p.tta_hflip, "batch_size": p.batch_size},
            {"samples": p.bootstrap_samples, "confidence": p.confidence, "seed": params.seed})


def run(args, params) -> str:
    from petseg.lib.checkpoint import load_checkpoint
    from petseg.lib.data import load_split
    from petseg.lib.device import announce_device
    from petseg.lib.io import write_csv, write_json
    from petseg.lib.scoring import evaluate_model, load_folder
    results, split = {}, None
    loaded = [(path, *load_checkpoint(path)) for path in args.checkpoint]  # every file checked before any work
    device, amp = announce_device(params.train.amp if params else "auto", "evaluate")
    for path, model, meta in loaded:
        model = model.to(device)
        if args.folder is not None:
            split = load_folder(args.folder, meta["image_size"], args.list)
        elif split is None:
            split = load_split(args.data, args.split)
        p, bootstrap = settings(params, meta, path)
        results[meta["model"]], per_image, breeds = evaluate_model(
            model, split, p["threshold"], p["batch_size"], args.folder or args.raw, bootstrap, p["tta_hflip"], amp)
        if args.per_image_dir:
            write_csv(Path(args.per_image_dir) / f"test_dice_{meta['model']}.csv", per_image)
            write_csv(Path(args.per_image_dir) / f"test_breeds_{meta['model']}.csv", breeds,
                      fieldnames=["breed", "species", "dice", "n_images"])
    print(json.dumps(results, indent=2))
    if args.out:
        write_json(args.out, results)
    return " | ".join(f"{name}: Dice {r['dice']:.4f} on {r['n_images']} images" for name, r in results.items())


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", type=Path, nargs="+", default=default_checkpoints(),
                   help="model checkpoints (default: models/MODEL.pt of every model)")
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.path("--raw", "data/raw", "the unresized trimaps, for the Dice at original resolution")
    p.add_argument("--split", choices=["test", "valid"], default="test", help="the split of --data to score "
                   "(valid: to compare settings such as evaluate.tta_hflip without looking at test; default: %(default)s)")
    p.add_argument("--folder", type=Path, help="a folder with images/ and annotations/trimaps/")
    p.add_argument("--list", help="with --folder: score only the stems of annotations/LIST (e.g. test.txt)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--per-image-dir", type=Path, help="also write test_dice_MODEL.csv (each image's Dice) and "
                   "test_breeds_MODEL.csv (the Dice of each breed) here")
