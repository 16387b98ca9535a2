"""Stage `train`: train one model from scratch and keep the weights of its best validation Dice.

Outputs appear only once training is complete (an interrupted run leaves none that looks finished);
the state after each epoch is kept beside the checkpoint, so a rerun resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.models.spec import MODELS

HELP = "train one model from scratch, keep the best-validation checkpoint"
PARAMS = "required"
GIT_OUTPUTS = ("metrics", "plot")  # the options naming outputs git tracks: put back if the stage fails (cli.py)


def resolve_lr(lr: float | None, tuned: Path) -> float:
    """The model's learning rate when params set one (its own or the shared `lr`), else its tuned rate."""
    if lr is not None:
        return lr
    if tuned is None or not Path(tuned).is_file():
        raise PetsegError(f"{tuned}: no tuned learning rate; run `petseg tune` or set lr in params.yaml")
    return json.loads(Path(tuned).read_text())["best_lr"]


def run(args, params) -> str:
    from petseg.core import timings
    from petseg.core.device import announce, best_device, cpu_description, training_precision
    from petseg.core.io import write_csv, write_json
    from petseg.data.arrays import load_split
    from petseg.models.checkpoint import save_checkpoint
    from petseg.training.loop import fit
    from petseg.models.spec import model_path
    name, section = args.model, params.model(args.model)
    for flag, kind in (("tuned", "tuned"), ("checkpoint", "checkpoint"), ("metrics", "trained"), ("plot", "history")):
        setattr(args, flag, getattr(args, flag) or model_path(kind, name))
    lr = resolve_lr(params.lr_for(name), args.tuned)
    train = load_split(args.data, "train")
    announce("train", best_device(), training_precision(params.train.amp, best_device()))
    resume = args.checkpoint.with_suffix(".resume.pt")  # not a DVC output: it must survive a rerun
    result = fit(name, section.architecture(), train, load_split(args.data, "valid"), lr=lr, epochs=section.epochs,
                 seed=params.seed, train_params=params.train_for(name), augment=params.augment, resume=resume)
    if result.rank != 0:
        return f"{name}: rank {result.rank} done"
    best = result.history[result.best_epoch - 1]
    save_checkpoint(args.checkpoint, result.best_state, name, section.architecture(), train.image_size,
                    precision=result.precision, epoch=best["epoch"], valid_dice=best["valid_dice"], lr=lr)
    write_csv(args.plot, [{k: v for k, v in row.items() if k != "seconds"} for row in result.history])
    write_json(args.metrics, {"lr": lr, "epochs": len(result.history), "best_epoch": best["epoch"],
                              "best_valid_dice": best["valid_dice"]})
    epoch_seconds = [row["seconds"] for row in result.history]
    timings.record(args.timings, args.checkpoint, stage="train", model=name, cpu=cpu_description(),
                   device=str(best_device()), precision=result.precision, seconds=round(sum(epoch_seconds), 1), epoch_seconds=epoch_seconds)
    resume.unlink(missing_ok=True)
    return f"{name}: best valid Dice {best['valid_dice']:.4f} at epoch {best['epoch']}, saved {args.checkpoint}"


def add_arguments(p) -> None:
    p.add_argument("--model", choices=list(MODELS), required=True, help="the model to train")
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--tuned", type=Path, help="the tune JSON with best_lr, read when the lr param is null "
                   "(default: metrics/tune_MODEL.json)")
    p.add_argument("--checkpoint", type=Path, help="where to save the best weights (default: models/MODEL.pt)")
    p.add_argument("--metrics", type=Path, help="the training summary JSON (default: metrics/train_MODEL.json)")
    p.add_argument("--plot", type=Path, help="the per-epoch CSV (default: plots/train_MODEL.csv)")
    p.path("--timings", "logs/timings.jsonl", "append the training time here, kept out of the outputs so that "
           "they are the same bytes on every rerun")
