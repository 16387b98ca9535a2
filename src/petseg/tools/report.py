"""`petseg report`: the results table of the README, made from metrics/evaluate.json rather than typed by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from petseg.core.errors import PetsegError
from petseg.core.timings import LOG, file_md5, read_timings
from petseg.models.spec import display_name, model_path

HELP = "the results table (Markdown) from metrics/evaluate.json"
PARAMS = "never"
MAX_LOCK_BYTES = 16 * 2**20  # a dvc.lock is a few kB; read none larger


def markers(section: str = "results") -> tuple[str, str]:
    """The comments a section's table stands between in a Markdown file."""
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


START, END = markers()  # the default section's


def run(args, params) -> str:
    runs, timings = {}, read_timings(args.timings)
    for given in args.metrics or ["metrics/evaluate.json"]:
        label, _, path = given.rpartition("=")
        own = Path(path).parent.parent / LOG  # a run kept under runs/NAME/ carries its clone's log in NAME/logs/
        same = own.resolve() == Path(args.timings).resolve()
        runs[label] = with_training(Path(path), timings if same else read_timings(own) | timings)
    table = results_table(runs)
    print(table)
    if args.readme:
        update_readme(args.readme, table, section=args.section)
    return f"results table from {len(runs)} evaluate JSON" + (f", written into {args.readme}" if args.readme else "")


def with_training(path: Path, timings: dict[str, dict]) -> dict:
    """Each model's entry of the evaluate JSON at `path` with its epochs (train_MODEL.json beside it, the
    pipeline's metrics/ layout), its training minutes, the CPU and precision it was trained in and inference
    ms per image where they are known: from `timings`, found by the hashes of the JSON and of the checkpoint
    models/MODEL.pt beside metrics/ (or, where the checkpoint is not kept, as in runs/, the hash dvc.lock
    beside metrics/ gives it); or from the JSONs themselves, as petseg wrote them before it kept times in a log."""
    evaluate, root = json.loads(path.read_text()), path.parent.parent
    inference = (timings.get(file_md5(path)) or {}).get("ms_per_image") or {}
    locked, out = None, {}
    for name, scores in evaluate.items():
        trained, checkpoint = path.parent / f"train_{name}.json", model_path("checkpoint", name)
        record = json.loads(trained.read_text()) if trained.is_file() else {}
        if (root / checkpoint).is_file():
            md5 = file_md5(root / checkpoint)
        else:
            locked = locked if locked is not None else locked_md5s(root / "dvc.lock")
            md5 = locked.get(checkpoint.as_posix())
        timed = timings.get(md5) or {}
        seconds = timed.get("seconds", record.get("train_seconds"))  # a JSON of before the log held its time
        out[name] = scores | {"epochs": record.get("epochs"), "train_minutes": None if seconds is None else seconds / 60,
                              "inference_ms_per_image": inference.get(name, scores.get("inference_ms_per_image")),
                              "trained_on": trained_on(timed)}
    return out


def locked_md5s(lock: Path) -> dict[str, str]:
    """{output path: md5} of every stage's outputs in the dvc.lock at `lock`; {} where there is none."""
    if not lock.is_file() or lock.stat().st_size > MAX_LOCK_BYTES:
        return {}
    try:
        locked = yaml.safe_load(lock.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise PetsegError(f"{lock}: not a readable dvc.lock ({type(err).__name__})") from None
    stages = locked.get("stages") if isinstance(locked, dict) else None
    return {out["path"]: out.get("md5") for stage in (stages.values() if isinstance(stages, dict) else [])
            if isinstance(stage, dict) for out in stage.get("outs") or [] if isinstance(out, dict) and isinstance(out.get("path"), str)}


def trained_on(timed: dict) -> str | None:
    """Where a training log entry says the model was trained: `CPU (features), precision`, or the device."""
    if timed.get("device") == "cpu":
        return f"{timed.get('cpu', 'a CPU')}, {timed.get('precision', 'precision unknown')}"
    return timed.get("device")


COLUMNS = [  # (header, key, format): blank where a run's JSON predates the key
    ("epochs", "epochs", "{}"), ("train min", "train_minutes", "{:.1f}"), ("test Dice", "dice", "{:.4f}"), ("per-image Dice", "mean_image_dice", "{:.4f}"),
    ("reference protocol", "reference_dice", "{:.4f}"), ("boundary IoU", "boundary_iou", "{:.4f}"),
    ("Dice at original size", "dice_original_resolution", "{:.4f}"), ("cats", "dice_cat", "{:.4f}"),
    ("dogs", "dice_dog", "{:.4f}"), ("IoU", "iou", "{:.4f}"), ("test images", "n_images", "{}"),
    ("skipped", "n_skipped", "{}"), ("parameters", "parameters", "{:,}"), ("ms/image", "inference_ms_per_image", "{:.1f}"),
    ("trained on", "trained_on", "{}"),
]


def results_table(runs: dict[str, dict]) -> str:
    """One row per model of each run ({label: evaluate JSON}); a `run` column when there are labels."""
    import pandas as pd

    from petseg.tools.tables import markdown
    rows = []
    for label, evaluate in runs.items():
        for name, r in evaluate.items():
            cells = {header: None if r.get(key) is None else fmt.format(r[key]) for header, key, fmt in COLUMNS}
            interval = f"{r['dice_ci_low']:.4f} to {r['dice_ci_high']:.4f}" if "dice_ci_low" in r else None
            rows.append({"run": label, "model": display_name(name), **cells, "95% interval": interval})
    frame = pd.DataFrame(rows)
    order = ["model"] + [c[0] for c in COLUMNS[:3]] + ["95% interval"] + [c[0] for c in COLUMNS[3:]]
    return markdown(frame[(["run"] if any(runs) else []) + order])


def update_readme(readme: Path, table: str, section: str = "results") -> None:
    """Replace what stands between the `section` markers of `readme` with `table`."""
    start, end = markers(section)
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
    p.add_argument("--timings", type=Path, default=LOG, help="the log the stages append their times to, for "
                   "the training minutes and ms per image (default: %(default)s)")
