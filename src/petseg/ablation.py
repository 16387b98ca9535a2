"""The ablation table of docs/ablation.md, made from DVC experiments rather than typed by hand.

An experiment named `abl<step>-<label>-s<seed>` is one seed of one step; each step is the previous
one plus a change, and the table averages each step over its seeds.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess

from petseg.config import flatten

NAME = re.compile(r"^abl(\d+)-([\w.]+)-s(\d+)$")
MODELS = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}


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


def ablation_rows(exp_show: list[dict]) -> list[dict]:
    """One row per ablation experiment: step, label, seed, flat params, metrics per model, minutes."""
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
        seconds = sum(metrics.get(f"metrics/tune_{m}.json", {}).get("tune_seconds", 0)
                      + metrics.get(f"metrics/train_{m}.json", {}).get("train_seconds", 0) for m in MODELS)
        rows.append({"step": int(match[1]), "label": match[2], "seed": int(match[3]),
                     "params": flatten(data["params"]["params.yaml"]["data"]),
                     "dice": {m: evaluate[m]["dice"] for m in MODELS},
                     "dice_original": {m: evaluate[m].get("dice_original_resolution") for m in MODELS},
                     "minutes": seconds / 60})
    return sorted(rows, key=lambda r: (r["step"], r["seed"]))


def param_changes(before: dict, after: dict) -> str:
    changed = [f"`{k}` {before.get(k)} → {after[k]}" for k in sorted(after) if k != "seed" and before.get(k) != after[k]]
    return ", ".join(changed) or "(none)"


def ablation_table(rows: list[dict]) -> str:
    """Markdown: per step, the change against the step before and each model's Dice, mean over seeds."""
    steps = sorted({r["step"] for r in rows})
    lines = ["| step | change against the step before | seeds | " + " | ".join(
        f"{name} Dice (mean; per seed) | {name} at original size" for name in MODELS.values())
        + " | tune + train minutes |", "| --- | --- | --- | " + "--- | --- | " * len(MODELS) + "--- |"]
    previous = None
    for step in steps:
        group = [r for r in rows if r["step"] == step]
        change = "the baseline" if previous is None else param_changes(previous["params"], group[0]["params"])
        cells = []
        for m in MODELS:
            per_seed = "; ".join(f"{r['dice'][m]:.4f}" for r in group)
            cells.append(f"**{statistics.mean(r['dice'][m] for r in group):.4f}** ({per_seed})")
            originals = [r["dice_original"][m] for r in group if r["dice_original"][m] is not None]
            cells.append(f"{statistics.mean(originals):.4f}" if originals else "")
        minutes = statistics.mean(r["minutes"] for r in group)
        lines.append(f"| {step} {group[0]['label']} | {change} | {', '.join(str(r['seed']) for r in group)} | "
                     + " | ".join(cells) + f" | {minutes:.1f} |")
        previous = group[0]
    return "\n".join(lines)


def read_exp_show() -> list[dict]:
    """`dvc exp show --json` over every commit (an ablation's baseline may be an older commit)."""
    result = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise OSError(f"dvc exp show failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)
