"""`petseg <stage>`: one subcommand per pipeline stage. Each reads its params, calls plain functions,
writes its outputs, and ends with a one-line summary."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

from petseg.config import MODELS, ParamError, load_params

# Bad input (params, files, checkpoints, a diverging loss) is shown as one line; PETSEG_DEBUG=1 shows
# the traceback too. Anything else is a bug and keeps its traceback.
ERRORS = (ValueError, OSError, FloatingPointError)
DEFAULT_BATCH = 16  # photos per inference batch where no params.yaml says (evaluate.batch_size)


def cmd_check(args, params):
    from petseg.io import atomic_path
    with atomic_path(args.out) as tmp:  # the same bytes whatever the params: a valid change reruns nothing
        tmp.write_text("params valid\n")
    return f"params valid (marker {args.out})"


def cmd_download(args, params):
    from petseg.download import copy_folder, ensure_archives, extract
    data = params["data"]
    if data["source"] == "folder":
        folder = Path(data["folder"]).expanduser()
        counts, done = copy_folder(folder, args.out), f"checked and copied {folder} to {args.out}"
    else:
        if data["source"] == "sample":
            archives = ensure_archives(args.sample_dir, data["archives"]["sample"])
        else:
            archives = ensure_archives(args.archives, data["archives"]["full"], data["url"], data["retries"],
                                       data["timeout"])
        counts = extract(archives, args.out)
        done = f"verified and extracted {', '.join(map(str, archives.values()))} to {args.out}"
    print(f"{args.out}: " + ", ".join(f"{key} {value}" for key, value in counts.items()), file=sys.stderr)
    return done


def cmd_preprocess(args, params):
    from petseg.data import preprocess
    from petseg.io import write_json
    p = params["preprocess"]
    counts = preprocess(args.raw, args.out, p["image_size"], p["valid_fraction"], params["seed"],
                        p["on_bad_file"], p["min_side"], p["max_pixels"], p["num_workers"])
    write_json(args.counts, counts)
    return (f"wrote {args.out}: " + ", ".join(f"{k} {counts[k]}" for k in ("train", "valid", "test"))
            + f" images; skipped {counts['skipped']} (listed in {args.out}/skipped.csv)")


def tune_fingerprint(params: dict, name: str, processed: Path) -> dict:
    """Everything a trial's result depends on; a change starts a fresh study. The model's architecture, not
    its `epochs`: trials run `tune.epochs` (dvc.yaml tracks the same keys, so an epochs change reruns no tuning)."""
    from petseg.models import architecture
    manifest = (Path(processed) / "manifest.csv").read_text()
    tune = {k: v for k, v in params["tune"].items() if k not in ("storage", "heartbeat_seconds")}
    return ({key: params[key] for key in ("seed", "train", "augment")}
            | {name: architecture(name, params[name]), "tune": tune, "manifest": manifest})


def cmd_tune(args, params):
    from petseg.data import load_split
    from petseg.io import write_csv, write_json
    from petseg.models import architecture
    from petseg.tune import NO_TUNING, TRIALS_FIELDS, best_trial, open_storage, trials_table, tune_model
    if params["tune"]["n_trials"] == 0:  # a fixed lr trains (config.py requires one); the outputs say no search ran
        for name in args.model or MODELS:
            write_json(Path(args.metrics_dir) / f"tune_{name}.json", NO_TUNING)
            write_csv(Path(args.plots_dir) / f"tune_{name}.csv", [], fieldnames=TRIALS_FIELDS)
        return f"no search (tune.n_trials 0): both models train with lr {params['lr']:.2e}"
    train, valid = load_split(args.data, "train"), load_split(args.data, "valid")
    storage = open_storage(params["tune"]["storage"])
    compute_setup(params, "tune")
    summary = []
    for name in args.model or MODELS:
        study = tune_model(name, architecture(name, params[name]), train, valid, tune_params=params["tune"],
                           train_params=params["train"], augment_params=params["augment"],
                           seed=params["seed"], storage=storage,
                           fingerprint=tune_fingerprint(params, name, args.data))
        best = best_trial(study)
        write_json(Path(args.metrics_dir) / f"tune_{name}.json", best)
        write_csv(Path(args.plots_dir) / f"tune_{name}.csv", trials_table(study), fieldnames=TRIALS_FIELDS)
        summary.append(f"{name} best lr {best['best_lr']:.2e} (valid Dice {best['best_valid_dice']:.4f})")
    return "; ".join(summary)


def compute_setup(params: dict | None, stage: str):
    """The device and whether to autocast (train.amp; `auto` outside a project), said once on stderr."""
    from petseg.device import best_device, precision_note, use_amp
    device, setting = best_device(), params["train"]["amp"] if params is not None else "auto"
    print(f"petseg {stage}: {precision_note(setting, device)}", file=sys.stderr, flush=True)
    return device, use_amp(setting, device)


def resolve_lr(params: dict, tuned: Path) -> float:
    """The `lr` param when set, else the tuned rate of this model."""
    if params["lr"] is not None:
        return params["lr"]
    if not Path(tuned).is_file():
        raise ValueError(f"{tuned}: no tuned learning rate; run `petseg tune` or set lr in params.yaml")
    return json.loads(Path(tuned).read_text())["best_lr"]


def cmd_train(args, params):
    from petseg.checkpoint import save_checkpoint
    from petseg.data import load_split
    from petseg.io import write_csv, write_json
    from petseg.models import architecture
    from petseg.train import fit
    name, lr, arch = args.model, resolve_lr(params, args.tuned), architecture(args.model, params[args.model])
    train = load_split(args.data, "train")
    compute_setup(params, "train")
    resume = args.checkpoint.with_suffix(".resume.pt")  # not a DVC output: it must survive a rerun
    result = fit(name, arch, train, load_split(args.data, "valid"), lr=lr, epochs=params[name]["epochs"],
                 seed=params["seed"], train_params=params["train"], augment_params=params["augment"],
                 resume=resume)
    if result.rank != 0:
        return f"{name}: rank {result.rank} done"
    best = result.history[result.best_epoch - 1]
    # Outputs appear only once training is complete: an interrupted run leaves none that looks finished.
    # the threshold and TTA go with the weights: predict needs no params.yaml (dvc.yaml tracks both for train)
    save_checkpoint(args.checkpoint, result.best_state, name, arch, train.images.shape[1],
                    epoch=best["epoch"], valid_dice=best["valid_dice"], lr=lr,
                    threshold=params["evaluate"]["threshold"], tta_hflip=params["evaluate"]["tta_hflip"])
    write_csv(args.plot, result.history)
    write_json(args.metrics, {"lr": lr, "epochs": len(result.history), "best_epoch": best["epoch"],
                              "best_valid_dice": best["valid_dice"],
                              "train_seconds": round(sum(row["seconds"] for row in result.history), 1)})
    resume.unlink(missing_ok=True)
    return f"{name}: best valid Dice {best['valid_dice']:.4f} at epoch {best['epoch']}, saved {args.checkpoint}"


def inference_settings(params: dict | None, meta: dict, path: Path) -> tuple[dict, dict | None]:
    """Threshold, TTA and batch size, and the bootstrap settings: from params.yaml in a project; outside one,
    threshold and TTA as the checkpoint records them, and no bootstrap interval."""
    if params is not None:
        p = params["evaluate"]
        return p, {"samples": p["bootstrap_samples"], "confidence": p["confidence"], "seed": params["seed"]}
    if "threshold" not in meta or "tta_hflip" not in meta:
        raise ValueError(f"{path}: records no threshold and TTA (an older checkpoint); run where its params.yaml "
                         "is, or give --params")
    return {"threshold": meta["threshold"], "tta_hflip": meta["tta_hflip"], "batch_size": DEFAULT_BATCH}, None


def cmd_evaluate(args, params):
    from petseg.checkpoint import load_checkpoint
    from petseg.data import load_split
    from petseg.evaluate import evaluate_model, load_folder
    from petseg.io import write_csv, write_json
    results, split = {}, None
    loaded = [(path, *load_checkpoint(path)) for path in args.checkpoint]  # every file checked before any work
    device, amp = compute_setup(params, "evaluate")
    for path, model, meta in loaded:
        model = model.to(device)
        if args.folder is not None:
            split = load_folder(args.folder, meta["image_size"], args.list)
        elif split is None:
            split = load_split(args.data, args.split)
        p, bootstrap = inference_settings(params, meta, path)
        results[meta["model"]], per_image, breeds = evaluate_model(
            model, split, p["threshold"], p["batch_size"], args.folder or args.raw, bootstrap, p["tta_hflip"], amp)
        if args.per_image_dir:
            write_csv(Path(args.per_image_dir) / f"test_dice_{meta['model']}.csv", per_image)
            write_csv(Path(args.per_image_dir) / f"test_breeds_{meta['model']}.csv", breeds,
                      fieldnames=["breed", "species", "dice", "n_images"])
    print(json.dumps(results, indent=2))
    if args.out:
        write_json(args.out, results)
    return " | ".join(f"{name}: Dice {r['dice']:.4f} on {r['n_images']} images" for name, r in results.items())


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_history(path: Path) -> list[dict]:
    return [{k: float(v) for k, v in row.items()} for row in read_rows(path)]


def cmd_visualize(args, params):
    import numpy as np
    from petseg.checkpoint import load_checkpoint
    from petseg.data import load_split
    from petseg.evaluate import predict_probabilities
    from petseg.visualize import choose_photos, plot_curves, prediction_grid
    test, p = load_split(args.data, "test"), params["visualize"]
    per_image = {Path(path).stem.removeprefix("test_dice_"): read_rows(path) for path in args.per_image}
    # a photo whose trimap marks no pet scores 0 for any prediction: an annotation's failure, not a model's
    no_pet = {stem for stem, mask in zip(test.stems, test.masks) if not mask.any()}
    rows = choose_photos(per_image, p["n_images"], p["n_worst"], params["seed"], not_worst=no_pet)
    index = {stem: i for i, stem in enumerate(test.stems)}
    missing = [stem for stem, _ in rows if stem not in index]
    if missing:
        raise ValueError(f"{args.per_image[0]}: {missing[0]} is not in the test split of {args.data}; "
                         "evaluate again (petseg evaluate --per-image-dir)")
    picked = [index[stem] for stem, _ in rows]
    images, predictions = np.asarray(test.images[picked]), {}
    device, amp = compute_setup(params, "visualize")
    for path in args.checkpoint:
        model, meta = load_checkpoint(path)
        model = model.to(device)
        probabilities, _ = predict_probabilities(model, images, params["evaluate"]["batch_size"],
                                                 tta_hflip=params["evaluate"]["tta_hflip"], amp=amp)
        predictions[meta["model"]] = (probabilities > params["evaluate"]["threshold"]).numpy()
    prediction_grid(images, np.asarray(test.masks[picked]), predictions, [label for _, label in rows],
                    [stem for stem, _ in rows], args.grid)
    plot_curves({Path(p).stem.removeprefix("train_"): read_history(p) for p in args.history}, args.curves)
    return f"wrote {args.grid} ({len(rows)} test photos) and {args.curves}"


def cmd_predict(args, params):
    from petseg.predict import collect_photos, predict_photos
    onnx = args.model.suffix.lower() == ".onnx"
    if onnx:  # onnxruntime: no torch imported on this path
        from petseg.onnx_model import load_onnx
        model, meta = load_onnx(args.model)
    else:
        try:
            from petseg.checkpoint import load_checkpoint
        except ModuleNotFoundError as err:  # an install for ONNX models only
            raise ValueError(f"{args.model}: a PyTorch checkpoint needs {err.name} (pip install petseg); an ONNX "
                             "model made by petseg export needs only onnxruntime") from None
        model, meta = load_checkpoint(args.model)
    p, _ = inference_settings(None, meta, args.model)
    photos = collect_photos(args.photos)  # every input checked before any work
    if onnx:
        amp = False
        print("petseg predict: fp32, onnxruntime on the CPU", file=sys.stderr, flush=True)
    else:
        device, amp = compute_setup(params, "predict")
        model = model.to(device)
    written, skipped = predict_photos(model, meta["image_size"], photos, args.out,
                                      args.batch_size, p["threshold"], p["tta_hflip"], amp)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not written and skipped:
        raise ValueError(f"none of the {len(skipped)} photos could be read")
    return f"wrote masks and overlays of {len(written)} photos to {args.out}; skipped {len(skipped)}"


def cmd_export(args, params):
    from petseg.checkpoint import load_checkpoint
    from petseg.export import PARITY_TOLERANCE, check_parity, export_onnx, parity_photos
    from petseg.io import atomic_path
    outs = args.out or [Path(c).with_suffix(".onnx") for c in args.checkpoint]
    if len(outs) != len(args.checkpoint):
        raise ValueError(f"--out: {len(outs)} paths for {len(args.checkpoint)} checkpoints; give one .onnx each")
    if args.cards is not None and params is None:
        raise ValueError("--cards: a model card needs the project's params.yaml (or --params)")
    loaded = [(path, *load_checkpoint(path)) for path in args.checkpoint]  # every file checked before any work
    if args.cards is not None:
        from petseg.card import model_card
        evaluated, counts = json.loads(Path(args.metrics).read_text()), json.loads(Path(args.counts).read_text())
    photos, source = parity_photos(args.photos)
    done = []
    for (path, model, meta), out in zip(loaded, outs):
        print(f"petseg export: {path} -> {out}", file=sys.stderr, flush=True)
        export_onnx(model, meta, out)
        parity = check_parity(model, out, photos, meta["image_size"])
        print(f"petseg export: {out}: largest |logit difference| from PyTorch "
              + ", ".join(f"{diff:.1e} at {shape} px" for shape, diff in parity.items()), file=sys.stderr)
        done.append(f"{out} (max logit difference {max(parity.values()):.1e})")
        if args.cards is not None:
            name = meta["model"]
            trained = json.loads((Path(args.metrics).parent / f"train_{name}.json").read_text())
            card = model_card(name, meta, params, counts, trained, evaluated[name], parity, source, PARITY_TOLERANCE)
            with atomic_path(Path(args.cards) / f"{name}.md") as tmp:
                tmp.write_text(card)
            done.append(f"{Path(args.cards) / f'{name}.md'}")
    return "wrote " + ", ".join(done) + f"; checked with onnxruntime on {source}"


def cmd_report(args, params):
    from petseg.report import results_table, update_readme
    runs = {}
    for given in args.metrics or ["metrics/evaluate.json"]:
        label, _, path = given.rpartition("=")
        runs[label] = json.loads(Path(path).read_text())
    table = results_table(runs)
    print(table)
    if args.readme:
        update_readme(args.readme, table, section=args.section)
    return f"results table from {len(runs)} evaluate JSON" + (f", written into {args.readme}" if args.readme else "")


def cmd_ablation(args, params):
    from petseg.ablation import ablation_rows, ablation_table, dice_minutes_figure, read_exp_show
    from petseg.report import update_readme
    rows = ablation_rows(read_exp_show())
    if not rows:
        raise ValueError("no finished experiments named abl<step>-<label>-s<seed> (see docs/ablation.md)")
    table = ablation_table(rows)
    print(table)
    if args.doc:
        update_readme(args.doc, table, section="ablation")
    if args.curve:
        dice_minutes_figure(rows, args.curve, args.reference, params["seed"])
    return f"{len(rows)} experiments in {len({r['step'] for r in rows})} steps" + (
        f", written into {args.doc}" if args.doc else "")


def cmd_plots_template(args, params):
    from petseg.plots_page import write_template
    write_template(args.out)
    return f"wrote {args.out} (dvc plots show/diff render offline with it)"


def cmd_bench(args, params):
    from petseg.bench import run_bench, table
    from petseg.data import load_split
    from petseg.io import write_json
    if args.from_file:  # the table of a saved run, e.g. one from a GPU machine
        result = json.loads(Path(args.from_file).read_text())
    else:
        full_data = args.full_data if args.full_data and args.full_data.is_dir() else None
        if args.full_data and full_data is None:
            print(f"petseg bench: {args.full_data} not found: no full-data epoch", file=sys.stderr)
        result = run_bench(args.raw, load_split(args.data, "train"), load_split(args.data, "valid"), params,
                           args.repeats, args.tuning, full_data)
        write_json(args.out, result)
    print(table(result))
    if args.readme:
        from petseg.report import update_readme
        update_readme(args.readme, table(result), section=args.section)
    done = f"table of {args.from_file}" if args.from_file else f"wrote {args.out}"
    return done + (f" and its table into {args.readme}" if args.readme else "")


def cmd_profile(args, params):
    from petseg.config import profile_overrides
    overrides = profile_overrides(params, args.profile)
    print(" ".join(overrides))
    return f"{len(overrides) // 2} params from {args.profile}, checked (use: dvc exp run $(petseg profile ...))"


def cmd_make_sample(args, params):
    from petseg.download import read_split_list
    from petseg.sample import make_sample, stratified_stems
    keep = read_split_list(args.keep) if args.keep else []
    stems = stratified_stems(args.src, args.trainval_per_breed, args.test_per_breed, args.seed, keep)
    checksums = make_sample(args.src, args.out, args.max_side, args.quality, stems)
    print(json.dumps(checksums, indent=2))
    return f"wrote {args.out}/images.tar.gz and annotations.tar.gz; put the checksums in params.yaml data.archives.sample"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petseg", description="Binary pet segmentation on Oxford-IIIT Pet, one subcommand per pipeline stage "
        "(dvc.yaml runs them). Each stage reads its params, writes its outputs atomically and ends with a one-line "
        "summary on stderr; stdout carries only a command's product (JSON, Markdown, arguments).")
    parser.add_argument("--params", type=Path, help="params file (default: params.yaml; predict never reads it, "
                        "evaluate only when it exists)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE", help="one of:")

    def stage(name, func, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    def checkpoints(p):
        p.add_argument("--checkpoint", type=Path, nargs="+", default=[Path(f"models/{m}.pt") for m in MODELS],
                       help="model checkpoints (default: models/unet.pt models/resnet34_unet.pt)")

    data_help = "the preprocessed arrays (default: %(default)s)"
    p = stage("check", cmd_check, "validate params.yaml and write a marker that stays byte-identical while it "
              "is valid (the pipeline's first stage: bad params stop it before DVC removes any output)")
    p.add_argument("--out", type=Path, default=Path("metrics/params.ok"), help="the marker (default: %(default)s)")
    p = stage("download", cmd_download, "get and verify the archives (data.source), or copy a local folder "
              "(data.folder), in the official layout")
    p.add_argument("--out", type=Path, default=Path("data/raw"), help="where to extract (default: %(default)s)")
    p.add_argument("--sample-dir", type=Path, default=Path("data/sample"),
                   help="the shipped sample archives (default: %(default)s)")
    p.add_argument("--archives", type=Path, default=Path("data/archives"),
                   help="where the full archives are downloaded, or placed by hand (default: %(default)s)")
    p = stage("preprocess", cmd_preprocess, "decode, resize and split the photos into uint8 arrays")
    p.add_argument("--raw", type=Path, default=Path("data/raw"), help="the official layout (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("data/processed"),
                   help="folder for the arrays and manifest.csv (default: %(default)s)")
    p.add_argument("--counts", type=Path, default=Path("metrics/preprocess.json"),
                   help="JSON of the split sizes and skipped files (default: %(default)s)")
    p = stage("tune", cmd_tune, "Optuna search of each model's learning rate (study in tune.storage: "
              "resumable, and shared by several tune processes)")
    p.add_argument("--data", type=Path, default=Path("data/processed"), help=data_help)
    p.add_argument("--model", choices=MODELS, action="append", help="tune only this model (repeatable)")
    p.add_argument("--metrics-dir", type=Path, default=Path("metrics"),
                   help="folder for tune_MODEL.json, the best trial (default: %(default)s)")
    p.add_argument("--plots-dir", type=Path, default=Path("plots"),
                   help="folder for tune_MODEL.csv, one row per trial (default: %(default)s)")
    p = stage("train", cmd_train, "train one model from scratch, keep the best-validation checkpoint")
    p.add_argument("--model", choices=MODELS, required=True, help="the model to train")
    p.add_argument("--data", type=Path, default=Path("data/processed"), help=data_help)
    p.add_argument("--tuned", type=Path, help="tune JSON with best_lr (default: metrics/tune_MODEL.json)")
    p.add_argument("--checkpoint", type=Path, help="default: models/MODEL.pt")
    p.add_argument("--metrics", type=Path, help="default: metrics/train_MODEL.json")
    p.add_argument("--plot", type=Path, help="per-epoch CSV (default: plots/train_MODEL.csv)")
    p = stage("evaluate", cmd_evaluate, "score checkpoints on the test split, or on any folder in the "
              "official layout (--folder), and print the metrics JSON")
    checkpoints(p)
    p.add_argument("--data", type=Path, default=Path("data/processed"), help=data_help)
    p.add_argument("--raw", type=Path, default=Path("data/raw"), help="the unresized trimaps, for the Dice at "
                   "original resolution (default: %(default)s)")
    p.add_argument("--split", choices=["test", "valid"], default="test", help="the split of --data to score "
                   "(valid: to compare settings such as evaluate.tta_hflip without looking at test; default: %(default)s)")
    p.add_argument("--folder", type=Path, help="a folder with images/ and annotations/trimaps/")
    p.add_argument("--list", help="with --folder: score only the stems of annotations/LIST (e.g. test.txt)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--per-image-dir", type=Path, help="also write test_dice_MODEL.csv (each image's Dice) and "
                   "test_breeds_MODEL.csv (the Dice of each breed) here")
    p = stage("visualize", cmd_visualize, "PNG grid of test predictions (a photo per breed, each model's "
              "worst) and PNG of the training curves")
    p.add_argument("--data", type=Path, default=Path("data/processed"), help=data_help)
    checkpoints(p)
    p.add_argument("--history", type=Path, nargs="+", default=[Path(f"plots/train_{m}.csv") for m in MODELS],
                   help="per-epoch CSVs of the training runs (default: plots/train_MODEL.csv of both)")
    p.add_argument("--per-image", type=Path, nargs="+", default=[Path(f"plots/test_dice_{m}.csv") for m in MODELS],
                   help="each model's per-image test Dice, from evaluate (for its worst photos; default: "
                   "plots/test_dice_MODEL.csv of both)")
    p.add_argument("--grid", type=Path, default=Path("plots/predictions.png"),
                   help="the prediction grid PNG (default: %(default)s)")
    p.add_argument("--curves", type=Path, default=Path("plots/curves.png"),
                   help="the training curves PNG (default: %(default)s)")
    p = stage("predict", cmd_predict, "masks for new photos of any size or format, as a viewer shows them "
              "(EXIF orientation), with the threshold and TTA the checkpoint records. Example: "
              "petseg predict my_cat.jpg photos/ --model models/unet.pt --out predictions/")
    p.add_argument("photos", type=Path, nargs="+", metavar="PHOTO_OR_FOLDER", help="photos, or folders searched "
                   "for photo files")
    p.add_argument("--model", type=Path, required=True, help="a checkpoint, e.g. models/unet.pt, or an ONNX model "
                   "made by petseg export, e.g. models/unet.onnx (runs with onnxruntime; no torch needed)")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>_mask.png and <name>_overlay.png "
                   "(photos of one name in several folders keep their folders under it)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="photos per batch (default: %(default)s)")
    p = stage("export", cmd_export, "write each checkpoint as an ONNX model (uint8 RGB NHWC in, logits out, "
              "normalisation inside; threshold and TTA in its metadata), check its logits against PyTorch with "
              "onnxruntime, and with --cards write a model card per model. Example: "
              "petseg export --checkpoint models/unet.pt --out models/unet.onnx")
    checkpoints(p)
    p.add_argument("--out", type=Path, nargs="+", help="the ONNX files, one per checkpoint (default: each "
                   "checkpoint's path with .onnx)")
    p.add_argument("--photos", type=Path, default=Path("data/raw/images"), help="photos for the check against "
                   "PyTorch, the first 4 (default: %(default)s; seeded noise where it does not exist)")
    p.add_argument("--cards", type=Path, metavar="DIR", help="also write DIR/MODEL.md, the model card, from "
                   "params.yaml and the metrics")
    p.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"), help="with --cards: the "
                   "evaluate JSON; train_MODEL.json is read beside it (default: %(default)s)")
    p.add_argument("--counts", type=Path, default=Path("metrics/preprocess.json"), help="with --cards: the "
                   "preprocess counts (default: %(default)s)")
    p = stage("report", cmd_report, "the results table (Markdown) from metrics/evaluate.json")
    p.add_argument("--metrics", action="append", metavar="[LABEL=]PATH",
                   help="an evaluate JSON, with a run label for a `run` column; repeat for several runs "
                        "(default: metrics/evaluate.json)")
    p.add_argument("--readme", type=Path, help="also replace the table between the section's markers of this file")
    p.add_argument("--section", default="results", help="the markers' name, <!-- NAME:start --> (default: %(default)s)")
    p = stage("ablation", cmd_ablation, "the ablation table (Markdown) from the DVC experiments named "
              "abl<step>-<label>-s<seed>, each step averaged over its seeds")
    p.add_argument("--doc", type=Path, help="also replace the table between the ablation markers of this file")
    p.add_argument("--curve", type=Path, help="also draw validation Dice against training minutes to this PNG")
    p.add_argument("--reference", help="with --curve: a commit whose longer run is drawn too, its minutes "
                   "rescaled to this machine")
    p = stage("plots-template", cmd_plots_template, "write the offline HTML template for dvc plots")
    p.add_argument("--out", type=Path, default=Path(".dvc/plots/offline.html"),
                   help="the template file (default: %(default)s)")
    p = stage("bench", cmd_bench, "measure input pipeline, training step, epoch and inference speed "
              "against the straightforward way, side by side")
    p.add_argument("--raw", type=Path, default=Path("data/raw"),
                   help="the official layout, decoded by the straightforward path (default: %(default)s)")
    p.add_argument("--data", type=Path, default=Path("data/processed"), help=data_help)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default: %(default)s)")
    p.add_argument("--tuning", action="store_true", help="also compare the lr search with and without pruning "
                   "(2 seeds each; minutes)")
    p.add_argument("--full-data", type=Path, default=Path("../shared/data/oxford-pets-160"),
                   help="a folder in the official layout: also time one UNet epoch over its whole trainval split at "
                   "128 px, each way, when it exists (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("metrics/bench.json"),
                   help="the measurements JSON (default: %(default)s)")
    p.add_argument("--readme", type=Path, help="also replace the table between the bench markers of this file")
    p.add_argument("--section", default="bench", help="the markers' name in --readme (default: %(default)s)")
    p.add_argument("--from", dest="from_file", type=Path, metavar="JSON",
                   help="measure nothing: print (and with --readme, write) the table of a saved bench JSON")
    p = stage("profile", cmd_profile, "print the `-S key=value` arguments of dvc exp run that switch to a "
              "profile, after checking the result. Example: dvc exp run -n full $(petseg profile profiles/full.yaml)")
    p.add_argument("profile", type=Path, help="a YAML file with the params to change, e.g. profiles/full.yaml")
    p = stage("make-sample", cmd_make_sample, "build data/sample archives from a folder in the official layout")
    p.add_argument("--src", type=Path, default=Path("../shared/data/oxford-pets-160"),
                   help="a folder in the official layout (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("data/sample"), help="folder for the two archives "
                   "(default: %(default)s)")
    p.add_argument("--trainval-per-breed", type=int, default=10, help="stems per breed from trainval.txt "
                   "(default: %(default)s)")
    p.add_argument("--test-per-breed", type=int, default=8, help="stems per breed from test.txt (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="seed of the draw (default: %(default)s)")
    p.add_argument("--keep", type=Path, help="a file of stems taken first, one per line, '#' comments "
                   "(the shipped sample: data/sample/keep.txt)")
    p.add_argument("--max-side", type=int, default=160, help="larger photos are shrunk to this longer side "
                   "(default: %(default)s)")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality of shrunk photos (default: %(default)s)")
    return parser


def fill_model_defaults(args) -> None:
    """`petseg train --model M` writes models/M.pt, metrics/train_M.json... unless told otherwise."""
    if args.command == "train":
        m = args.model
        args.tuned = args.tuned or Path(f"metrics/tune_{m}.json")
        args.checkpoint = args.checkpoint or Path(f"models/{m}.pt")
        args.metrics = args.metrics or Path(f"metrics/train_{m}.json")
        args.plot = args.plot or Path(f"plots/train_{m}.csv")


# commands that run outside a project: predict takes its settings from the checkpoint, evaluate from params.yaml
# where there is one (else from the checkpoint), export needs it only for model cards, and the others use no params
PARAMS_OPTIONAL = {"predict": "never", "report": "never", "plots-template": "never", "make-sample": "never",
                   "evaluate": "if present", "export": "if present"}


def read_params(args) -> dict | None:
    """params.yaml (or --params), validated; None where the command can do without and there is none."""
    when = PARAMS_OPTIONAL.get(args.command)
    path = args.params or Path("params.yaml")
    if when == "never" or (when == "if present" and args.params is None and not path.is_file()):
        return None
    return load_params(path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fill_model_defaults(args)
    start = time.perf_counter()
    try:
        summary = args.func(args, read_params(args))
    except ParamError as err:
        print(f"petseg: {err.source or args.params or 'params.yaml'}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"petseg {args.command}: interrupted; no partial output was left in place", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `petseg report | head -3`: the reader has what it wanted; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except ERRORS as err:
        if os.environ.get("PETSEG_DEBUG"):
            raise
        print(f"petseg {args.command}: error: {err}", file=sys.stderr)
        return 1
    # stdout is the product (JSON, Markdown, arguments); the summary goes with the progress, to stderr
    print(f"petseg {args.command}: {summary} ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return 0
