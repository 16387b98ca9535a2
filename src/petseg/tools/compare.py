"""`petseg compare`: experiments and branches side by side, from `dvc exp show --json`: both models' test
Dice with its interval, the epochs, the training minutes, and the params that differ; text that fits 80
columns, Markdown or CSV. Minutes come from the timings log (petseg.core.timings), found by the hashes of the
run's trials CSV and checkpoint: a run made in another clone shows `-`."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from petseg.core.config import flatten
from petseg.core.errors import PetsegError
from petseg.core.timings import LOG, read_timings, seconds_of
from petseg.models.spec import MODELS, display_name, model_path
from petseg.tools.tables import missing

HELP = ("experiments (and branches with -A) side by side: test Dice with intervals, epochs, training minutes and the "
        "params that differ. Example: petseg compare -A --format markdown")
PARAMS = "never"
EVALUATE, WIDTH = "metrics/evaluate.json", 80


def revisions(shown: list[dict]) -> list[dict]:
    """Each revision of `dvc exp show --json` (the workspace, commits, their experiments), flattened."""
    out = []
    for entry in shown:
        if entry.get("data"):
            out.append(entry)
        for experiment in entry.get("experiments") or []:
            out += revisions(experiment.get("revs") or [])
    return out


def table(shown: list[dict], timings: dict[str, dict]):
    """One row per revision that has test metrics: run; per model `MODEL dice`, `low`, `high`, `epochs`,
    `minutes` (training) and `tune minutes`, from `timings`; then the params that differ between the rows, by their
    dotted keys (a pandas DataFrame)."""
    import pandas as pd
    rows = []
    for rev in revisions(shown):
        data = rev["data"]
        metrics = {path: entry.get("data") or {} for path, entry in (data.get("metrics") or {}).items()}
        if not metrics.get(EVALUATE):
            continue
        params = flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
        outs = data.get("outs") or {}
        row = {"run": rev.get("name") or (rev["rev"] if rev["rev"] == "workspace" else str(rev["rev"])[:7])}
        for name in MODELS:
            scores = metrics[EVALUATE].get(name, {})
            train, tune = (seconds_of(timings, (outs.get(str(model_path(kind, name))) or {}).get("hash"))
                           for kind in ("checkpoint", "trials"))
            row |= {f"{name} dice": scores.get("dice"), f"{name} low": scores.get("dice_ci_low"),
                    f"{name} high": scores.get("dice_ci_high"), f"{name} epochs": params.get(f"{name}.epochs"),
                    f"{name} minutes": None if train is None else train / 60,
                    f"{name} tune minutes": None if tune is None else tune / 60}
        rows.append(row | {f"param:{key}": value for key, value in params.items()})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise PetsegError("dvc exp show: no revision with metrics/evaluate.json (run `dvc exp run` first)")
    params = [c for c in frame.columns if c.startswith("param:")]
    # null (or a key older revisions lack) counts as a value: `unet.lr` set on one run differs from null on the rest
    varying = [c for c in params if frame[c].astype(str).nunique(dropna=False) > 1]
    frame = frame.drop(columns=[c for c in params if c not in varying])
    return frame.rename(columns=lambda c: c.removeprefix("param:"))


def dice_cell(row, name: str) -> str:
    """`0.8469 (0.833-0.860)`: the Dice and its interval."""
    dice, low, high = row[f"{name} dice"], row[f"{name} low"], row[f"{name} high"]
    if missing(dice):
        return "-"
    return f"{dice:.4f}" + ("" if missing(low) else f" ({low:.3f}-{high:.3f})")


def summary(frame) -> list[dict]:
    """What the text and Markdown show: run, Dice with interval per model, epochs, training minutes, changed
    params (tuning, which a clone or an experiment often reuses, is in the CSV)."""
    changed = [c for c in frame.columns if c != "run" and " " not in c]
    out = []
    for _, row in frame.iterrows():
        epochs = [row[f"{n} epochs"] for n in MODELS]
        minutes = [row[f"{n} minutes"] for n in MODELS]
        out.append({"run": row["run"], **{display_name(n): dice_cell(row, n) for n in MODELS},
                    "epochs": "/".join("-" if missing(e) else str(int(e)) for e in epochs),
                    "train min": "/".join("-" if missing(m) else f"{m:.1f}" if m < 10 else f"{m:.0f}"
                                          for m in minutes),
                    "changed": " ".join(f"{c}={'null' if missing(row[c]) else row[c]}" for c in changed)})
    return out


def as_text(rows: list[dict]) -> str:
    """A fixed-width table within 80 columns; each run's changed params on the lines below it."""
    models = [display_name(n) for n in MODELS]
    widths = {"run": 14, **{m: 20 for m in models}, "epochs": 6, "train min": 9}
    header = " ".join(f"{key:<{w}}" for key, w in widths.items()).rstrip()
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(" ".join(f"{str(row[key])[:w]:<{w}}" for key, w in widths.items()).rstrip())
        if row["changed"]:
            lines += textwrap.wrap(row["changed"], WIDTH, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


def run(args, params) -> str:
    if args.json is not None:
        shown = json.loads(Path(args.json).read_text())
    else:
        result = subprocess.run(["dvc", "exp", "show", "--json", *(["-A"] if args.all_branches else [])],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise PetsegError(f"dvc exp show failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
        shown = json.loads(result.stdout)
    import pandas as pd

    from petseg.tools.tables import markdown
    frame = table(shown, read_timings(args.timings))
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
    else:
        rows = summary(frame)
        print(markdown(pd.DataFrame(rows)) if args.format == "markdown" else as_text(rows))
    return f"{len(frame)} runs compared"


def add_arguments(p) -> None:
    p.add_argument("-A", "--all-branches", action="store_true", help="also every branch's last commit")
    p.add_argument("--format", choices=["text", "markdown", "csv"], default="text",
                   help="text: fits 80 columns (default); markdown; csv: every number and every differing param")
    p.add_argument("--json", type=Path, help="read this saved `dvc exp show --json` instead of running it")
    p.add_argument("--timings", type=Path, default=LOG, help="the log the stages append their times to "
                   "(default: %(default)s)")
