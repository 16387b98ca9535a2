"""Stage `tune`: an Optuna search of each model's learning rate, on the validation split.

The study lives in `tune.storage` (resumable, and shared by several `petseg tune` processes); the best
trial goes to --metrics (metrics/tune_MODEL.json in dvc.yaml) and every trial to --plot.
"""

from __future__ import annotations

from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.models.spec import MODELS

HELP = "Optuna search of each model's learning rate (study in tune.storage: resumable, and shared by several " \
       "tune processes)"
PARAMS = "required"
GIT_OUTPUTS = ("metrics", "plot")  # the options naming outputs git tracks: put back if the stage fails (cli.py)


def tune_fingerprint(params, name: str, processed: Path) -> dict:
    """Everything a trial's result depends on; a change starts a fresh study. The model's architecture, not
    its `epochs`: trials run `tune.epochs` (dvc.yaml tracks the same keys, so an epochs change reruns no tuning)."""
    manifest = (Path(processed) / "manifest.csv").read_text()
    tune = params.tune.model_dump(exclude={"storage", "heartbeat_seconds"})
    return {"seed": params.seed, "train": params.train_for(name).model_dump(), "augment": params.augment.model_dump(),
            name: params.model(name).architecture(), "tune": tune, "manifest": manifest}


def run(args, params) -> str:
    from petseg.core import timings
    from petseg.core.device import announce, best_device, cpu_description, training_precision
    from petseg.core.io import write_csv, write_json
    from petseg.data.arrays import load_split
    from petseg.models.spec import model_path
    from petseg.training.search import (NO_TUNING, TRIALS_FIELDS, best_trial, open_storage, storage_errors,
                                        trial_seconds, trials_table, tune_model)
    names = args.model or list(MODELS)
    if len(names) > 1 and (args.metrics or args.plot):
        raise PetsegError("--metrics and --plot name one model's files: give one --model with them")
    outputs = {name: (args.metrics or model_path("tuned", name), args.plot or model_path("trials", name))
               for name in names}
    if params.tune.n_trials == 0:  # a fixed lr trains (config.py requires one); the outputs say no search ran
        for name, (metrics, plot) in outputs.items():
            write_json(metrics, NO_TUNING)
            write_csv(plot, [], fieldnames=TRIALS_FIELDS)
            timings.record(args.timings, plot, stage="tune", model=name, seconds=0.0)
        rates = ", ".join(f"{name} trains with lr {params.lr_for(name):.2e}" for name in names)
        return f"no search (tune.n_trials 0): {rates}"
    train, valid = load_split(args.data, "train"), load_split(args.data, "valid")
    storage = open_storage(params.tune.storage)
    precision = training_precision(params.train.amp, best_device())
    announce("tune", best_device(), precision)
    summary = []
    for name, (metrics, plot) in outputs.items():
        with storage_errors(params.tune.storage):  # an RDB server that goes away mid-search
            study = tune_model(name, params.model(name).architecture(), train, valid, tune=params.tune,
                               train_params=params.train_for(name), augment=params.augment, seed=params.seed,
                               storage=storage, fingerprint=tune_fingerprint(params, name, args.data))
            best = best_trial(study)
            rows, seconds = trials_table(study), trial_seconds(study)
        write_json(metrics, best)
        write_csv(plot, rows, fieldnames=TRIALS_FIELDS)
        timings.record(args.timings, plot, stage="tune", model=name, cpu=cpu_description(),
                       device=str(best_device()), precision=precision.name, seconds=seconds)
        summary.append(f"{name} best lr {best['best_lr']:.2e} (valid Dice {best['best_valid_dice']:.4f})")
    return "; ".join(summary)


def add_arguments(p) -> None:
    p.add_argument("--model", choices=list(MODELS), action="append", help="tune only this model (repeatable; "
                   "default: every model)")
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--metrics", type=Path, help="with one --model: the best trial's JSON "
                   "(default: metrics/tune_MODEL.json)")
    p.add_argument("--plot", type=Path, help="with one --model: the trials' CSV, one row per trial "
                   "(default: plots/tune_MODEL.csv)")
    p.path("--timings", "logs/timings.jsonl", "append each search's time here (the trials' own wall-clock "
           "seconds), under the hash of its --plot; kept out of the outputs so that they are the same bytes on "
           "every rerun")
