"""`petseg profile`: the `-S key=value` arguments of `dvc exp run` that switch params.yaml to a profile."""

from __future__ import annotations

from pathlib import Path

HELP = ("print the `-S key=value` arguments of dvc exp run that switch to a profile, after checking the result. "
        "Example: dvc exp run -n full $(petseg profile profiles/full.yaml)")
PARAMS = "required"


def run(args, params) -> str:
    from petseg.core.config import profile_overrides
    overrides = profile_overrides(params, args.profile)
    print(" ".join(overrides))
    return f"{len(overrides) // 2} params from {args.profile}, checked (use: dvc exp run $(petseg profile ...))"


def add_arguments(p) -> None:
    p.add_argument("profile", type=Path, help="a YAML file with the params to change, e.g. profiles/full.yaml")
