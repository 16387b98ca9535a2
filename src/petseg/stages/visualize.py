"""Stage `visualize`: a PNG grid of test predictions (a photo per breed, then each model's worst) and a PNG
of the training curves."""

from __future__ import annotations

from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.models.spec import default_checkpoints

HELP = "PNG grid of test predictions (a photo per breed, each model's worst) and PNG of the training curves"
PARAMS = "required"
GIT_OUTPUTS = ("grid", "curves")  # the options naming outputs git tracks: put back if the stage fails (cli.py)


def run(args, params) -> str:
    import numpy as np

    from petseg.core.device import announce, best_device, recorded_precision
    from petseg.core.io import read_csv, read_history
    from petseg.data.arrays import load_split
    from petseg.inference.figures import choose_photos, plot_curves, prediction_grid
    from petseg.inference.predictor import predict_probabilities
    from petseg.inference.settings import from_params
    from petseg.models.checkpoint import load_checkpoint
    if not len(args.checkpoint) == len(args.history) == len(args.per_image):
        raise PetsegError("--checkpoint, --history and --per-image: give one of each per model, in the same order")
    loaded = [load_checkpoint(path) for path in args.checkpoint]  # the model names come from the checkpoints
    names = [meta["model"] for _, meta in loaded]
    test, p, settings = load_split(args.data, "test"), params.visualize, from_params(params)
    per_image = {name: read_csv(path) for name, path in zip(names, args.per_image)}
    # a photo whose trimap marks no pet scores 0 for any prediction: an annotation's failure, not a model's
    no_pet = {stem for stem, mask in zip(test.stems, test.masks) if not mask.any()}
    rows = choose_photos(per_image, p.n_images, p.n_worst, params.seed, not_worst=no_pet)
    index = {stem: i for i, stem in enumerate(test.stems)}
    missing = [stem for stem, _ in rows if stem not in index]
    if missing:
        raise PetsegError(f"{args.per_image[0]}: {missing[0]} is not in the test split of {args.data}; "
                          "evaluate again (petseg evaluate --per-image-dir)")
    picked = [index[stem] for stem, _ in rows]
    images, predictions, device = np.asarray(test.images[picked]), {}, best_device()
    for model, meta in loaded:
        precision = recorded_precision(meta, device)
        announce("visualize", device, precision)
        probabilities, _ = predict_probabilities(model.to(device), images, settings.batch_size,
                                                 tta_hflip=settings.tta_hflip, precision=precision)
        predictions[meta["model"]] = (probabilities > settings.threshold).numpy()
    prediction_grid(images, np.asarray(test.masks[picked]), predictions, [label for _, label in rows],
                    [stem for stem, _ in rows], args.grid)
    plot_curves({name: read_history(path) for name, path in zip(names, args.history)}, args.curves)
    return f"wrote {args.grid} ({len(rows)} test photos) and {args.curves}"


def add_arguments(p) -> None:
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--checkpoint", type=Path, nargs="+", default=default_checkpoints(),
                   help="model checkpoints (default: models/MODEL.pt of every model)")
    p.add_argument("--history", type=Path, nargs="+", required=True,
                   help="per-epoch CSVs of the training runs, one per checkpoint, in the same order")
    p.add_argument("--per-image", type=Path, nargs="+", required=True,
                   help="each checkpoint's per-image test Dice from evaluate (for its worst photos), in the same order")
    p.path("--grid", "plots/predictions.png", "the prediction grid PNG")
    p.path("--curves", "plots/curves.png", "the training curves PNG")
