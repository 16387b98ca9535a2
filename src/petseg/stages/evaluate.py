"""Stage `evaluate`: score the checkpoints on the test split (or the validation split, or any folder in the
official layout) and print the metrics JSON: pooled, per-image and reference-protocol Dice with a bootstrap
interval, boundary IoU, per species and breed, at original size, and the photos that could not be scored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from petseg.models.spec import default_checkpoints

HELP = ("score checkpoints on the test split, or on any folder in the official layout (--folder), and print "
        "the metrics JSON")
PARAMS = "if present"  # outside a project: petseg's default threshold, TTA and bootstrap (params.yaml's)
GIT_OUTPUTS = ("out", "per_image_dir")  # the options naming outputs git tracks: put back if the stage fails (cli.py)


def settings(params):
    """Threshold, TTA, batch size and the bootstrap: params.yaml's evaluate section, or its shipped defaults."""
    from petseg.inference import settings as inference
    if params is None:
        print("petseg evaluate: no params.yaml here: threshold, TTA and bootstrap as params.yaml ships them",
              file=sys.stderr)
        return inference.DEFAULTS, inference.BOOTSTRAP_DEFAULTS
    return inference.from_params(params), inference.bootstrap_from_params(params)


def run(args, params) -> str:
    from petseg.core import timings
    from petseg.core.device import announce, best_device, cpu_description, recorded_precision
    from petseg.core.io import whole_outputs, write_json
    from petseg.data.arrays import load_split, skipped_of
    from petseg.data.folder import load_folder
    from petseg.inference.scoring import evaluate_model
    from petseg.models.checkpoint import load_checkpoint
    loaded = [(path, *load_checkpoint(path)) for path in args.checkpoint]  # every file checked before any work
    given, bootstrap = settings(params)
    results, ms_per_image, split, device = {}, {}, None, best_device()
    with whole_outputs(args.checkpoint) as outputs:  # the JSON and the tables together, or none of them
        if args.out:
            outputs.reserve(args.out)
        for path, model, meta in loaded:
            if args.per_image_dir:
                for kind in ("dice", "breeds"):
                    outputs.reserve(Path(args.per_image_dir) / f"test_{kind}_{meta['model']}.csv")
        for path, model, meta in loaded:
            precision = recorded_precision(meta, device)
            announce("evaluate", device, precision)
            if args.folder is not None:
                split, skipped = load_folder(args.folder, meta["image_size"], args.list)
            elif split is None:
                split, skipped = load_split(args.data, args.split), skipped_of(args.data, args.split)
            results[meta["model"]], per_image, breeds, seconds = evaluate_model(
                model.to(device), split, given, precision, args.folder or args.raw, bootstrap, skipped)
            ms_per_image[meta["model"]] = round(1000 * seconds / len(split.images), 2)
            if args.per_image_dir:
                per_image.to_csv(outputs.path(Path(args.per_image_dir) / f"test_dice_{meta['model']}.csv"), index=False)
                breeds.to_csv(outputs.path(Path(args.per_image_dir) / f"test_breeds_{meta['model']}.csv"), index=False)
        if args.out:
            write_json(outputs.path(args.out), results)
    if args.out and args.timings:
        timings.record(args.timings, args.out, stage="evaluate", cpu=cpu_description(), device=str(device),
                       batch_size=given.batch_size, tta_hflip=given.tta_hflip, ms_per_image=ms_per_image)
    print(json.dumps(results, indent=2))
    return " | ".join(f"{name}: Dice {r['dice']:.4f} on {r['n_images']} images ({r['n_skipped']} skipped), "
                      f"{ms_per_image[name]} ms per image" for name, r in results.items())


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", type=Path, nargs="+", default=default_checkpoints(),
                   help="model checkpoints (default: models/MODEL.pt of every model)")
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.path("--raw", "data/raw", "the unresized trimaps and the list files (original-size Dice, breeds, list order)")
    p.add_argument("--split", choices=["test", "valid"], default="test", help="the split of --data to score "
                   "(valid: to compare settings such as evaluate.tta_hflip without looking at test; default: %(default)s)")
    p.add_argument("--folder", type=Path, help="a folder with images/ and annotations/trimaps/")
    p.add_argument("--list", help="with --folder: score only the stems of annotations/LIST (e.g. test.txt)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--per-image-dir", type=Path, help="also write test_dice_MODEL.csv (each image's Dice and "
                   "boundary IoU) and test_breeds_MODEL.csv (the Dice of each breed) here")
    p.add_argument("--timings", type=Path, help="with --out: append the inference time per image here "
                   "(logs/timings.jsonl in dvc.yaml), kept out of the JSON so that it is the same bytes on every rerun")
