"""`petseg ablation`: the ablation table of docs/ablation.md, made from DVC experiments rather than typed by hand.

An experiment named `abl<step>-<label>-s<seed>` is one seed of one step; each step is the previous
one plus a change, and the table averages each step over its seeds. Steps are compared on validation
Dice; the test Dice is given once, for the step chosen.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
import subprocess
from pathlib import Path

from petseg.core.config import flatten
from petseg.core.errors import PetsegError
from petseg.core.io import csv_rows
from petseg.core.timings import LOG, read_timings, seconds_of
from petseg.models.spec import MODELS, model_path

HELP = ("the ablation table (Markdown) from the DVC experiments named abl<step>-<label>-s<seed>, each step "
        "averaged over its seeds")
PARAMS = "required"
NAME = re.compile(r"^abl(\d+)-([\w.]+)-s(\d+)$")


def run(args, params) -> str:
    from petseg.tools.report import update_readme
    timings = read_timings(args.timings)
    rows = ablation_rows(read_exp_show(), timings)
    if not rows:
        raise PetsegError("no finished experiments named abl<step>-<label>-s<seed> (see docs/ablation.md)")
    table = ablation_table(rows)
    print(table)
    if args.doc:
        update_readme(args.doc, table, section="ablation")
    if args.curve:
        dice_minutes_figure(rows, timings, args.curve, args.reference, params.seed)
    return f"{len(rows)} experiments in {len({r['step'] for r in rows})} steps" + (
        f", written into {args.doc}" if args.doc else "")


def finished_experiments(exp_show: list[dict]) -> list[dict]:
    """The finished experiments of `dvc exp show --json` output, every baseline commit included."""
    found = []
    for baseline in exp_show:
        for exp in baseline.get("experiments") or []:
            executor = exp.get("executor") or {}
            rev = exp["revs"][0]
            if executor.get("state", "success") == "success" and not rev.get("error") and rev.get("name"):
                found.append(rev)
    return found


def ablation_rows(exp_show: list[dict], timings: dict[str, dict]) -> list[dict]:
    """One row per ablation experiment: step, label, seed, flat params, metrics per model, checkpoint hashes,
    and tune + train minutes from `timings` (None where a run's times are not in the log)."""
    rows = []
    for rev in finished_experiments(exp_show):
        match = NAME.match(rev["name"])
        if not match:
            continue
        data = rev["data"]
        metrics = {path: entry.get("data", {}) for path, entry in data["metrics"].items()}
        evaluate = metrics.get("metrics/evaluate.json", {})
        if not evaluate:
            continue
        outs = data.get("outs") or {}
        hashes = {(kind, m): (outs.get(str(model_path(kind, m))) or {}).get("hash")
                  for kind in ("trials", "checkpoint") for m in MODELS}
        seconds = seconds_of(timings, *hashes.values())
        rows.append({"step": int(match[1]), "label": match[2], "seed": int(match[3]), "rev": rev["rev"],
                     "params": flatten(data["params"]["params.yaml"]["data"]),
                     "valid_dice": {m: metrics.get(f"metrics/train_{m}.json", {}).get("best_valid_dice")
                                    for m in MODELS},
                     "dice": {m: evaluate[m]["dice"] for m in MODELS},
                     "dice_original": {m: evaluate[m].get("dice_original_resolution") for m in MODELS},
                     "checkpoint": {m: hashes["checkpoint", m] for m in MODELS},
                     "minutes": None if seconds is None else seconds / 60})
    return sorted(rows, key=lambda r: (r["step"], r["seed"]))


def param_changes(before: dict, after: dict) -> str:
    changed = [f"`{k}` {before.get(k)} → {after[k]}" for k in sorted(after) if k != "seed" and before.get(k) != after[k]]
    return ", ".join(changed) or "(none)"


def ablation_frame(rows: list[dict]):
    """The rows as a DataFrame: step, label, seed, params, minutes (NaN where untimed), and per model
    `valid_MODEL`, `dice_MODEL`, `original_MODEL`."""
    import pandas as pd
    frame = pd.DataFrame([{"step": r["step"], "label": r["label"], "seed": r["seed"], "params": r["params"],
                           "minutes": r["minutes"],
                           **{f"{kind}_{m}": r[key][m] for m in MODELS
                              for kind, key in (("valid", "valid_dice"), ("dice", "dice"), ("original", "dice_original"))}}
                          for r in rows])
    frame["minutes"] = pd.to_numeric(frame["minutes"])
    return frame.sort_values(["step", "seed"], kind="stable")


def chosen_step(frame) -> int:
    """The step with the best validation Dice, averaged over both models and all its seeds (the first on a tie)."""
    return int(frame.groupby("step")[[f"valid_{m}" for m in MODELS]].mean().mean(axis=1).idxmax())


def ablation_table(rows: list[dict]) -> str:
    """Markdown: per step, the change against the step before and each model's validation Dice, mean over
    seeds; then the test Dice of the step with the best validation Dice, the only one scored on test."""
    import pandas as pd

    from petseg.tools.tables import markdown
    frame = ablation_frame(rows)
    chosen, table, previous = chosen_step(frame), [], None
    for step, group in frame.groupby("step"):
        first = group.iloc[0]
        row = {"step": f"{step} {first['label']}" + (" (chosen)" if step == chosen else ""),
               "change against the step before": "the baseline" if previous is None else param_changes(
                   previous, first["params"]),
               "seeds": ", ".join(map(str, group["seed"]))}
        for m, name in MODELS.items():
            per_seed = "; ".join(f"{v:.4f}" for v in group[f"valid_{m}"])
            row[f"{name} validation Dice (mean; per seed)"] = f"**{group[f'valid_{m}'].mean():.4f}** ({per_seed})"
        minutes = group["minutes"].mean()  # over the seeds whose times are in the log
        row["tune + train minutes"] = "-" if pd.isna(minutes) else f"{minutes:.1f}"
        table.append(row)
        previous = first["params"]
    group = frame[frame["step"] == chosen]
    scored = "; ".join(f"{name} {group[f'dice_{m}'].mean():.4f} (at original size {group[f'original_{m}'].mean():.4f})"
                       for m, name in MODELS.items())
    return (markdown(pd.DataFrame(table)) + f"\n\nTest Dice of the chosen step {chosen} ({group.iloc[0]['label']}), "
            f"mean over seeds {', '.join(map(str, group['seed']))}: {scored}.")


def read_exp_show() -> list[dict]:
    """`dvc exp show --json` over every commit (an ablation's baseline may be an older commit)."""
    result = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise OSError(f"dvc exp show failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def history_at(rev: str, model: str) -> list[dict]:
    """The per-epoch rows of plots/train_<model>.csv as committed at `rev` (an experiment or a commit)."""
    result = subprocess.run(["git", "show", f"{rev}:plots/train_{model}.csv"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise OSError(f"{rev}: no plots/train_{model}.csv ({result.stderr.strip()})")
    return csv_rows(result.stdout)


def dice_minutes_figure(rows: list[dict], timings: dict[str, dict], out, reference: str | None = None,
                        seed: int | None = None, target: float = 0.85) -> None:
    """Validation Dice per epoch against training minutes (each epoch's own time, from `timings`), one line
    per step (first seed); `reference` (a commit of a longer run, timed elsewhere) is drawn at the median
    epoch time measured here for the first step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from petseg.core.io import atomic_path
    seed = seed if any(r["seed"] == seed for r in rows) else rows[0]["seed"]
    fig, axes = plt.subplots(1, len(MODELS), figsize=(12, 4.5), sharey=True)
    for ax, (model, title) in zip(axes, MODELS.items()):
        drawn, first_epoch = None, None
        for row in (r for r in rows if r["seed"] == seed):
            history = history_at(row["rev"], model)
            epochs = (timings.get(row["checkpoint"][model]) or {}).get("epoch_seconds")
            if history == drawn or not epochs:  # a change after training (TTA): the same curve; or untimed
                continue
            drawn, first_epoch = history, first_epoch or statistics.median(epochs)
            ax.plot(list(itertools.accumulate(s / 60 for s in epochs)), [float(r["valid_dice"]) for r in history],
                    label=f"step {row['step']} {row['label']}")
        if reference and first_epoch:
            history = history_at(reference, model)
            ax.plot([first_epoch * (i + 1) / 60 for i in range(len(history))], [float(r["valid_dice"]) for r in history],
                    "k--", label=f"{reference[:7]}: {len(history)} epochs (at this machine's epoch time)")
        ax.axhline(target, color="grey", ls=":", lw=1)
        ax.set(title=f"{title} (seed {seed})", xlabel="training minutes on this machine")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("validation Dice per epoch")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def add_arguments(p) -> None:
    p.add_argument("--doc", type=Path, help="also replace the table between the ablation markers of this file")
    p.add_argument("--curve", type=Path, help="also draw validation Dice against training minutes to this PNG")
    p.add_argument("--reference", help="with --curve: a commit whose longer run is drawn too, its minutes "
                   "rescaled to this machine")
    p.add_argument("--timings", type=Path, default=LOG, help="the log the stages append their times to "
                   "(default: %(default)s)")
