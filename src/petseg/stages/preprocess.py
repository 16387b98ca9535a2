"""Stage `preprocess`: decode, resize and split the photos into uint8 arrays (train, valid, test) once."""

from __future__ import annotations

HELP = "decode, resize and split the photos into uint8 arrays"
PARAMS = "required"
GIT_OUTPUTS = ("counts",)  # the options naming outputs git tracks: put back if the stage fails (cli.py)


def run(args, params) -> str:
    from petseg.core.io import write_json
    from petseg.data.preprocess import preprocess
    p = params.preprocess
    counts = preprocess(args.raw, args.out, p.image_size, p.valid_fraction, params.seed, p.on_bad_file, p.min_side,
                        p.max_pixels, p.num_workers)
    write_json(args.counts, counts)
    return (f"wrote {args.out}: " + ", ".join(f"{k} {counts[k]}" for k in ("train", "valid", "test"))
            + f" images; skipped {counts['skipped']} (listed in {args.out}/skipped.csv)")


def add_arguments(p) -> None:
    p.path("--raw", "data/raw", "the official layout")
    p.path("--out", "data/processed", "folder for the arrays and manifest.csv")
    p.path("--counts", "metrics/preprocess.json", "JSON of the split sizes and skipped files")
