"""The tune stage: an Optuna search of each model's learning rate, resumable from its SQLite study."""

from __future__ import annotations

import hashlib
import json

import optuna

from petseg.data import Split
from petseg.train import fit


def study_name(model: str, settings: dict) -> str:
    """One study per model and settings: changed settings start a new study in the same storage."""
    digest = hashlib.md5(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return f"{model}-{digest}"


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def tune_model(name: str, arch: dict, train: Split, valid: Split, *, tune_params: dict, train_params: dict,
               augment_params: dict, seed: int, storage: str, fingerprint: dict) -> optuna.Study:
    """Run the trials still missing from this model's study; each trial trains `tune.epochs` epochs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name(name, fingerprint), storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune_params["startup_trials"]),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=tune_params["startup_trials"],
                                           n_warmup_steps=tune_params["pruner_warmup_epochs"]))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", tune_params["lr_min"], tune_params["lr_max"], log=True)

        def report(row: dict) -> None:
            trial.report(row["valid_dice"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = fit(name, arch, train, valid, lr=lr, epochs=tune_params["epochs"], seed=seed,
                     train_params=train_params, augment_params=augment_params, on_epoch=report)
        return max(row["valid_dice"] for row in result.history)

    def announce(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        steps = trial.intermediate_values
        dice = f"{steps[max(steps)]:.4f}" if steps else "n/a"
        print(f"{name} trial {trial.number + 1}/{tune_params['n_trials']}: lr {trial.params['lr']:.2e}, "
              f"valid Dice {dice} ({trial.state.name.lower()})", flush=True)

    missing = tune_params["n_trials"] - len(finished(study))
    if missing > 0:
        study.optimize(objective, n_trials=missing, catch=(FloatingPointError,), callbacks=[announce])
    return study


def trials_table(study: optuna.Study) -> list[dict]:
    """One row per finished trial; a pruned trial's value is its last reported Dice."""
    rows = []
    for trial in finished(study):
        steps = trial.intermediate_values
        value = trial.value if trial.value is not None else steps[max(steps)]
        rows.append({"trial": trial.number, "lr": trial.params["lr"], "valid_dice": value,
                     "epochs": len(steps), "pruned": int(trial.state == optuna.trial.TrialState.PRUNED)})
    return rows


def best_trial(study: optuna.Study) -> dict:
    rows = trials_table(study)
    complete = [row for row in rows if not row["pruned"]]
    if not complete:
        raise ValueError(f"study {study.study_name}: no trial completed; widen tune.lr_min..lr_max")
    best = max(complete, key=lambda row: row["valid_dice"])
    return {"best_lr": best["lr"], "best_valid_dice": best["valid_dice"], "best_trial": best["trial"],
            "n_trials": len(rows), "n_pruned": len(rows) - len(complete),
            "trial_epochs": sum(row["epochs"] for row in rows)}
