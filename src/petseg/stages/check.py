"""Stage `check`: validate params.yaml, and write a marker whose bytes are the same for any valid params.

The pipeline's first stage and a dependency of every other: bad params stop `dvc repro` here, before
DVC removes any output of the stages they would rerun, while a valid change reruns nothing through it.
"""

from __future__ import annotations

HELP = ("validate params.yaml and write a marker that stays byte-identical while it is valid (the pipeline's "
        "first stage: bad params stop it before DVC removes any output)")
PARAMS = "required"


def run(args, params) -> str:
    from petseg.core.io import atomic_path
    with atomic_path(args.out) as tmp:  # the params were validated on loading
        tmp.write_text("params valid\n")
    return f"params valid (marker {args.out})"


def add_arguments(p) -> None:
    p.path("--out", "metrics/params.ok", "the marker")
