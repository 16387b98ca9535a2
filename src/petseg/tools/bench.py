"""`petseg bench`: where petseg stands against the straightforward way, measured side by side (tools/measure.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = ("measure input pipeline, training step, epoch and inference speed against the straightforward way, "
        "side by side")
PARAMS = "required"


def run(args, params) -> str:
    from petseg.tools.measure import table
    if args.from_file:  # the table of a saved run, e.g. one from a GPU machine
        result = json.loads(Path(args.from_file).read_text())
    else:
        from petseg.core.io import write_json
        from petseg.data.arrays import load_split
        from petseg.tools.measure import run_bench
        full_data = args.full_data if args.full_data and args.full_data.is_dir() else None
        if args.full_data and full_data is None:
            print(f"petseg bench: {args.full_data} not found: no full-data epoch", file=sys.stderr)
        result = run_bench(args.raw, load_split(args.data, "train"), load_split(args.data, "valid"), params,
                           args.repeats, args.tuning, full_data)
        write_json(args.out, result)
    print(table(result))
    if args.readme:
        from petseg.tools.report import update_readme
        update_readme(args.readme, table(result), section=args.section)
    done = f"table of {args.from_file}" if args.from_file else f"wrote {args.out}"
    return done + (f" and its table into {args.readme}" if args.readme else "")


def add_arguments(p) -> None:
    p.path("--raw", "data/raw", "the official layout, decoded by the straightforward path")
    p.path("--data", "data/processed", "the preprocessed arrays")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default: %(default)s)")
    p.add_argument("--tuning", action="store_true", help="also compare the lr search with and without pruning "
                   "(2 seeds each; minutes)")
    p.path("--full-data", None, "a copy of the dataset in the official layout: also time one UNet epoch over its "
           "whole trainval split at 128 px, each way")
    p.path("--out", "metrics/bench.json", "the measurements JSON")
    p.add_argument("--readme", type=Path, help="also replace the table between the bench markers of this file")
    p.add_argument("--section", default="bench", help="the markers' name in --readme (default: %(default)s)")
    p.add_argument("--from", dest="from_file", type=Path, metavar="JSON",
                   help="measure nothing: print (and with --readme, write) the table of a saved bench JSON")
