"""Stage `tune`: an Optuna search of each model's learning rate, on the validation split.

The study lives in `tune.storage` (resumable, and shared by several `petseg tune` processes); the best
trial goes to metrics/tune_MODEL.json and every trial to plots/tune_MODEL.csv.
"""

from __future__ import annotations

from pathlib import Path

from petseg.lib.models import MODELS

HELP = "Optuna search of each model's learning rate (study in tune.storage: resumable, and shared by several " \
       "tune processes)"
PARAMS = "required"


def tune_fingerprint(params, name: str, processed: Path) -> dict:
    """Everything a trial's result depends on; a change starts a fresh study. The model's architecture, not
    its `epochs`: trials run `tune.epochs` (dvc.yaml tracks the same keys, so an epochs change reruns no tuning)."""
    manifest = (Path(processed) / "manifest.csv").read_text()
    tune = params.tune.model_dump(exclude={"storage", "heartbeat_seconds"})
    return {"seed": params.seed, "train": params.train.model_dump(), "augment": params.augment.model_dump(),
            name: params.model(name).architecture(), "tune": tune, "manifest": manifest}


def run(args, params) -> str:
    from petseg.lib.data import load_split
    from petseg.lib.device import announce_device
    from petseg.lib.io import write_csv, write_json
    from petseg.lib.search import NO_TUNING, TRIALS_FIELDS, best_trial, open_storage, trials_table, tune_model
    names = args.model or list(MODELS)
    if params.tune.n_trials == 0:  # a fixed lr trains (config.py requires one); the outputs say no search ran
        for name in names:
            write_json(Path(args.metrics_dir) / f"tune_{name}.json", NO_TUNING)
            write_csv(Path(args.plots_dir) / f"tune_{name}.csv", [], fieldnames=TRIALS_FIELDS)
        return f"no search (tune.n_trials 0): both models train with lr {params.lr:.2e}"
    train, valid = load_split(args.data, "train"), load_split(args.data, "valid")
    storage = open_storage(params.tune.storage)
    announce_device(params.train.amp, "tune")
    summary = []
    for name in names:
        study = tune_model(name, params.model(name).architecture(), train, valid, tune=params.tune,
                           train_params=params.train, augment=params.augment, seed=params.seed, storage=storage,
                           fingerprint=tune_fingerprint(params, name, args.data))
        best = best_trial(study)
        write_json(Path(args.metrics_dir) / f"tune_{name}.json", best)
        write_csv(Path(args.plots_dir) / f"tune_{name}.csv", trials_table(study), fieldnames=TRIALS_FIELDS)
        summary.append(f"{name} best lr {best['best_lr']:.2e} (valid Dice {best['best_valid_dice']:.4f})")
    return "; ".join(summary)


def add_arguments(p) -> None:
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--model", choices=list(MODELS), action="append", help="tune only this model (repeatable)")
    p.path("--metrics-dir", "metrics", "folder for tune_MODEL.json, the best trial")
    p.path("--plots-dir", "plots", "folder for tune_MODEL.csv, one row per trial")
