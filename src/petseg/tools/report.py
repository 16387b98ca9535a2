"""`petseg report`: the results table of the README, made from metrics/evaluate.json rather than typed by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.models.spec import MODELS

HELP = "the results table (Markdown) from metrics/evaluate.json"
PARAMS = "never"
START, END = "<!-- results:start -->", "<!-- results:end -->"  # the default section's markers


def run(args, params) -> str:
    runs = {}
    for given in args.metrics or ["metrics/evaluate.json"]:
        label, _, path = given.rpartition("=")
        runs[label] = json.loads(Path(path).read_text())
    table = results_table(runs)
    print(table)
    if args.readme:
        update_readme(args.readme, table, section=args.section)
    return f"results table from {len(runs)} evaluate JSON" + (f", written into {args.readme}" if args.readme else "")


def results_table(runs: dict[str, dict]) -> str:
    """One row per model of each run ({label: evaluate JSON}); a `run` column when there are labels."""
    labelled = any(runs)
    lines = [("| run " if labelled else "") + "| model | test Dice | 95% interval | Dice at original size | cats | dogs "
             "| mean image Dice | IoU | pixel accuracy | test images | parameters | ms/image |",
             ("| --- " if labelled else "") + "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, evaluate in runs.items():
        for name, r in evaluate.items():
            interval = f"{r['dice_ci_low']:.4f} to {r['dice_ci_high']:.4f}" if "dice_ci_low" in r else ""
            original, cats, dogs = (f"{r[key]:.4f}" if r.get(key) is not None else ""
                                    for key in ("dice_original_resolution", "dice_cat", "dice_dog"))
            lines.append((f"| {label} " if labelled else "")
                         + f"| {MODELS.get(name, name)} | {r['dice']:.4f} | {interval} | {original} | {cats} | {dogs} | "
                         f"{r['mean_image_dice']:.4f} | {r['iou']:.4f} | {r['pixel_accuracy']:.4f} | {r['n_images']} | "
                         f"{r['parameters']:,} | {r['inference_ms_per_image']:.1f} |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str, section: str = "results") -> None:
    """Replace what stands between the `section` markers of `readme` with `table`."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = Path(readme).read_text()
    if start not in text or end not in text:
        raise PetsegError(f"{readme}: no {start} ... {end} markers to put the table between")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    Path(readme).write_text(pattern.sub(lambda _: f"{start}\n{table}\n{end}", text))


def add_arguments(p) -> None:
    p.add_argument("--metrics", action="append", metavar="[LABEL=]PATH",
                   help="an evaluate JSON, with a run label for a `run` column; repeat for several runs "
                        "(default: metrics/evaluate.json)")
    p.add_argument("--readme", type=Path, help="also replace the table between the section's markers of this file")
    p.add_argument("--section", default="results", help="the markers' name, <!-- NAME:start --> (default: %(default)s)")
