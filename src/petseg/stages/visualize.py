"""Stage `visualize`: a PNG grid of test predictions (a photo per breed, then each model's worst) and a PNG
of the training curves."""

from __future__ import annotations

from pathlib import Path

from petseg.lib.models import MODELS, default_checkpoints

HELP = "PNG grid of test predictions (a photo per breed, each model's worst) and PNG of the training curves"
PARAMS = "required"


def run(args, params) -> str:
    import numpy as np
    from petseg.lib.checkpoint import load_checkpoint
    from petseg.lib.data import load_split
    from petseg.lib.device import announce_device
    from petseg.lib.figures import choose_photos, plot_curves, prediction_grid
    from petseg.lib.io import read_csv, read_history
    from petseg.lib.scoring import predict_probabilities
    test, p, e = load_split(args.data, "test"), params.visualize, params.evaluate
    per_image = {Path(path).stem.removeprefix("test_dice_"): read_csv(path) for path in args.per_image}
    # a photo whose trimap marks no pet scores 0 for any prediction: an annotation's failure, not a model's
    no_pet = {stem for stem, mask in zip(test.stems, test.masks) if not mask.any()}
    rows = choose_photos(per_image, p.n_images, p.n_worst, params.seed, not_worst=no_pet)
    index = {stem: i for i, stem in enumerate(test.stems)}
    missing = [stem for stem, _ in rows if stem not in index]
    if missing:
        raise ValueError(f"{args.per_image[0]}: {missing[0]} is not in the test split of {args.data}; "
                         "evaluate again (petseg evaluate --per-image-dir)")
    picked = [index[stem] for stem, _ in rows]
    images, predictions = np.asarray(test.images[picked]), {}
    device, amp = announce_device(params.train.amp, "visualize")
    for path in args.checkpoint:
        model, meta = load_checkpoint(path)
        model = model.to(device)
        probabilities, _ = predict_probabilities(model, images, e.batch_size, tta_hflip=e.tta_hflip, amp=amp)
        predictions[meta["model"]] = (probabilities > e.threshold).numpy()
    prediction_grid(images, np.asarray(test.masks[picked]), predictions, [label for _, label in rows],
                    [stem for stem, _ in rows], args.grid)
    plot_curves({Path(h).stem.removeprefix("train_"): read_history(h) for h in args.history}, args.curves)
    return f"wrote {args.grid} ({len(rows)} test photos) and {args.curves}"


def add_arguments(p) -> None:
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--checkpoint", type=Path, nargs="+", default=default_checkpoints(),
                   help="model checkpoints (default: models/MODEL.pt of every model)")
    p.add_argument("--history", type=Path, nargs="+", default=[Path(f"plots/train_{m}.csv") for m in MODELS],
                   help="per-epoch CSVs of the training runs (default: plots/train_MODEL.csv of every model)")
    p.add_argument("--per-image", type=Path, nargs="+", default=[Path(f"plots/test_dice_{m}.csv") for m in MODELS],
                   help="each model's per-image test Dice, from evaluate (for its worst photos; default: "
                   "plots/test_dice_MODEL.csv of every model)")
    p.path("--grid", "plots/predictions.png", "the prediction grid PNG")
    p.path("--curves", "plots/curves.png", "the training curves PNG")
