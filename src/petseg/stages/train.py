"""Stage `train`: train one model from scratch and keep the weights of its best validation Dice.

Outputs appear only once training is complete (an interrupted run leaves none that looks finished);
the state after each epoch is kept beside the checkpoint, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from petseg.lib.models import MODELS

HELP = "train one model from scratch, keep the best-validation checkpoint"
PARAMS = "required"


def resolve_lr(lr: float | None, tuned: Path) -> float:
    """The `lr` param when set, else the tuned rate of this model."""
    if lr is not None:
        return lr
    if not Path(tuned).is_file():
        raise ValueError(f"{tuned}: no tuned learning rate; run `petseg tune` or set lr in params.yaml")
    return json.loads(Path(tuned).read_text())["best_lr"]


def run(args, params) -> str:
    from petseg.lib.checkpoint import save_checkpoint
    from petseg.lib.data import load_split
    from petseg.lib.device import announce_device
    from petseg.lib.io import write_csv, write_json
    from petseg.lib.loop import fit
    name = args.model
    checkpoint = args.checkpoint or Path(f"models/{name}.pt")
    lr, section = resolve_lr(params.lr, args.tuned or Path(f"metrics/tune_{name}.json")), params.model(name)
    train = load_split(args.data, "train")
    announce_device(params.train.amp, "train")
    resume = checkpoint.with_suffix(".resume.pt")  # not a DVC output: it must survive a rerun
    result = fit(name, section.architecture(), train, load_split(args.data, "valid"), lr=lr, epochs=section.epochs,
                 seed=params.seed, train_params=params.train, augment=params.augment, resume=resume)
    if result.rank != 0:
        return f"{name}: rank {result.rank} done"
    best = result.history[result.best_epoch - 1]
    # the threshold and TTA go with the weights: predict needs no params.yaml (dvc.yaml tracks both for train)
    save_checkpoint(checkpoint, result.best_state, name, section.architecture(), train.images.shape[1],
                    epoch=best["epoch"], valid_dice=best["valid_dice"], lr=lr,
                    threshold=params.evaluate.threshold, tta_hflip=params.evaluate.tta_hflip)
    write_csv(args.plot or Path(f"plots/train_{name}.csv"), result.history)
    write_json(args.metrics or Path(f"metrics/train_{name}.json"),
               {"lr": lr, "epochs": len(result.history), "best_epoch": best["epoch"],
                "best_valid_dice": best["valid_dice"],
                "train_seconds": round(sum(row["seconds"] for row in result.history), 1)})
    resume.unlink(missing_ok=True)
    return f"{name}: best valid Dice {best['valid_dice']:.4f} at epoch {best['epoch']}, saved {checkpoint}"


def add_arguments(p) -> None:
    p.add_argument("--model", choices=list(MODELS), required=True, help="the model to train")
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--tuned", type=Path, help="tune JSON with best_lr (default: metrics/tune_MODEL.json)")
    p.add_argument("--checkpoint", type=Path, help="default: models/MODEL.pt")
    p.add_argument("--metrics", type=Path, help="default: metrics/train_MODEL.json")
    p.add_argument("--plot", type=Path, help="per-epoch CSV (default: plots/train_MODEL.csv)")
