"""An Optuna search of a model's learning rate (the tune stage runs it for each model).

The study lives in a storage (by default a journal file, Optuna's advice for several processes on
one machine; an RDB URL such as PostgreSQL's for several machines), so a killed run continues where it stopped and
several `petseg tune` processes can share one study: each trial slot is claimed in the storage,
heartbeats retire the trials of dead processes, and a worker that finds the remaining slots taken
waits for them instead of running extra trials.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy
from optuna.trial import TrialState

from petseg.core.config import Augment as AugmentParams
from petseg.core.config import Train as TrainParams
from petseg.core.config import Tune as TuneParams
from petseg.core.errors import Diverged, PetsegError
from petseg.core.io import fingerprint
from petseg.core.progress import note
from petseg.data.arrays import Split
from petseg.training.loop import fit

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
HEARTBEAT = "petseg_heartbeat"  # trial system attribute: the time its process last said it is alive

TRIALS_FIELDS = ["trial", "lr", "valid_dice", "epochs", "pruned"]
# tune_<model>.json when tune.n_trials is 0: the fixed `lr` param trains (config.py requires it)
NO_TUNING = {"best_lr": None, "best_valid_dice": None, "best_trial": None, "n_trials": 0, "n_pruned": 0,
             "trial_epochs": 0}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ALIVE = (TrialState.RUNNING, TrialState.WAITING)


class SlotTaken(Exception):
    """Another worker claimed the last trial slot first; this trial is closed without running."""


def study_name(model: str, settings: dict) -> str:
    """One study per model and settings: changed settings start a new study in the same storage."""
    return f"{model}-{fingerprint(settings)[:10]}"


# The password of an RDB storage comes from the environment, never from tune.storage: params.yaml is committed
# and `dvc exp show` prints it. PostgreSQL's client reads PGPASSWORD or ~/.pgpass itself; this variable serves
# any RDB (MySQL too).
PASSWORD_VARIABLE = "PETSEG_STORAGE_PASSWORD"


def shown(url: str) -> str:
    """The storage as it may be printed: an RDB URL with its password, if any, replaced by ***."""
    if "://" not in url:
        return url
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return url.split("://")[0] + "://..."  # unparsable: show no more than the scheme
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


@contextmanager
def storage_errors(url: str):
    """An RDB that cannot be reached (server down, database missing, password refused) as one PetsegError line
    that names the storage without its password."""
    try:
        yield
    except sqlalchemy.exc.OperationalError as e:
        reason = " ".join(str(e.orig if e.orig is not None else e).split())
        raise PetsegError(f"tune.storage {shown(url)}: {reason}") from None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A path (tune/study.journal): Optuna's JournalStorage in that file. A URL (sqlite:///..., postgresql://...):
    an RDBStorage; `postgresql://` uses psycopg 3 (pip install 'petseg[postgres]'), and a password comes from
    PGPASSWORD, ~/.pgpass or PETSEG_STORAGE_PASSWORD, never from the URL."""
    if "://" not in url:
        path = Path(url).resolve()  # absolute: the lock is a symlink to it, and a stale lock is found by its target
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise PetsegError(f"tune.storage {shown(url)}: not a file path or a storage URL") from None
    if parsed.password is not None:
        raise PetsegError(f"tune.storage {shown(url)}: a password does not belong in params.yaml (committed, and "
                          f"printed by dvc exp show); give it in PGPASSWORD or ~/.pgpass (PostgreSQL) or "
                          f"{PASSWORD_VARIABLE}")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's default psycopg2
    if parsed.drivername.startswith("sqlite"):
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 60}
    else:
        connect_args = {"password": os.environ[PASSWORD_VARIABLE]} if os.environ.get(PASSWORD_VARIABLE) else {}
    rdb_url = parsed.render_as_string(hide_password=False)
    with storage_errors(url):
        try:
            engine = sqlalchemy.create_engine(rdb_url, connect_args=connect_args)
        except ImportError as e:
            raise PetsegError(f"tune.storage {shown(url)}: its driver is not installed ({e}); for PostgreSQL: "
                              f"pip install 'petseg[postgres]'") from None
        try:
            with engine.connect():  # unreachable: fail now, in one line, instead of after the retries below
                pass
        finally:
            engine.dispose()
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(rdb_url, engine_kwargs={"connect_args": connect_args})
            except sqlalchemy.exc.SQLAlchemyError:
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)  # workers started together race to create the schema: the loser retries


@contextmanager
def heartbeat(trial: optuna.Trial, seconds: int):
    """While a trial runs, stamp it alive every `seconds` (Optuna's own heartbeat exists for RDB only)."""
    stop = threading.Event()

    def beat():
        while True:
            trial.storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, time.time())
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study: optuna.Study, seconds: int) -> None:
    """Mark failed the running trials not stamped alive for three heartbeats: their process died."""
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = t.system_attrs.get(HEARTBEAT, t.datetime_start.timestamp())
        if now - last > 3 * seconds:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def tune_model(name: str, arch: dict, train: Split, valid: Split, *, tune: TuneParams, train_params: TrainParams,
               augment: AugmentParams, seed: int, storage: optuna.storages.BaseStorage,
               fingerprint: dict) -> optuna.Study:
    """Run trials until this model's study holds `tune.n_trials` finished ones."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials, heartbeat_seconds = tune.n_trials, tune.heartbeat_seconds
    study = optuna.create_study(
        study_name=study_name(name, fingerprint), storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials,
                                           n_warmup_steps=tune.pruner_warmup_epochs))

    def objective(trial: optuna.Trial) -> float:
        ahead = [t for t in study.get_trials(deepcopy=False, states=FINISHED + ALIVE) if t.number < trial.number]
        if len(ahead) >= n_trials:
            raise SlotTaken()
        lr = trial.suggest_float("lr", tune.lr_min, tune.lr_max, log=True)

        def report(row: dict) -> None:
            trial.report(row["valid_dice"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        with heartbeat(trial, heartbeat_seconds):
            result = fit(name, arch, train, valid, lr=lr, epochs=tune.epochs, seed=seed,
                         train_params=train_params, augment=augment, on_epoch=report)
        return max(row["valid_dice"] for row in result.history)

    def announce(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            steps = trial.intermediate_values
            note(f"{name} trial {trial.number}: lr {trial.params['lr']:.2e}, valid Dice "
                 f"{steps[max(steps)]:.4f} after {len(steps)} epochs ({trial.state.name.lower()}); "
                 f"{len(finished(study))}/{n_trials} done")

    while True:
        fail_stale_trials(study, heartbeat_seconds)  # trials of killed processes
        diverged = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.params]
        if len(diverged) >= n_trials:
            raise PetsegError(f"{name}: {len(diverged)} trials diverged; lower tune.lr_max ({tune.lr_max})")
        done = len(finished(study))
        if done >= n_trials:
            return study
        if done + len(study.get_trials(deepcopy=False, states=ALIVE)) >= n_trials:
            time.sleep(heartbeat_seconds)  # the remaining slots are being run by another worker
            continue
        study.optimize(objective, n_trials=1, catch=(Diverged, SlotTaken), callbacks=[announce])


def trials_table(study: optuna.Study) -> list[dict]:
    """One row per finished trial; a pruned trial's value is its last reported Dice."""
    rows = []
    for trial in sorted(finished(study), key=lambda t: t.number):
        steps = trial.intermediate_values
        value = trial.value if trial.state == TrialState.COMPLETE else steps[max(steps)]
        rows.append({"trial": trial.number, "lr": trial.params["lr"], "valid_dice": value,
                     "epochs": len(steps), "pruned": int(trial.state == TrialState.PRUNED)})
    return rows


def trial_seconds(study: optuna.Study) -> float:
    """Wall-clock seconds spent in the finished trials, from their own timestamps (a resumed study keeps them)."""
    return round(sum((t.datetime_complete - t.datetime_start).total_seconds() for t in finished(study)), 1)


def best_trial(study: optuna.Study) -> dict:
    rows = trials_table(study)
    complete = [row for row in rows if not row["pruned"]]
    if not complete:
        raise PetsegError(f"study {study.study_name}: no trial completed; widen tune.lr_min..lr_max")
    best = max(complete, key=lambda row: row["valid_dice"])
    return {"best_lr": best["lr"], "best_valid_dice": best["valid_dice"], "best_trial": best["trial"],
            "n_trials": len(rows), "n_pruned": len(rows) - len(complete),
            "trial_epochs": sum(row["epochs"] for row in rows)}
