"""Stage `export`: each checkpoint as an ONNX model, its logits checked against PyTorch with onnxruntime,
and (with --cards) a model card per model written from the params and the metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from petseg.lib.models import default_checkpoints


HELP = ("write each checkpoint as an ONNX model (uint8 RGB NHWC in, logits out, normalisation inside; threshold "
        "and TTA in its metadata), check its logits against PyTorch with onnxruntime, and with --cards write a "
        "model card per model. Example: petseg export --checkpoint models/unet.pt --out models/unet.onnx")
PARAMS = "if present"  # needed only for the model cards


def run(args, params) -> str:
    from petseg.lib.checkpoint import load_checkpoint
    from petseg.lib.io import atomic_path
    from petseg.lib.onnx_export import PARITY_TOLERANCE, check_parity, export_onnx, parity_photos
    outs = args.out or [Path(c).with_suffix(".onnx") for c in args.checkpoint]
    if len(outs) != len(args.checkpoint):
        raise ValueError(f"--out: {len(outs)} paths for {len(args.checkpoint)} checkpoints; give one .onnx each")
    if args.cards is not None and params is None:
        raise ValueError("--cards: a model card needs the project's params.yaml (or --params)")
    loaded = [(path, *load_checkpoint(path)) for path in args.checkpoint]  # every file checked before any work
    if args.cards is not None:
        from petseg.lib.card import model_card
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


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", type=Path, nargs="+", default=default_checkpoints(),
                   help="model checkpoints (default: models/MODEL.pt of every model)")
    p.add_argument("--out", type=Path, nargs="+", help="the ONNX files, one per checkpoint (default: each "
                   "checkpoint's path with .onnx)")
    p.add_argument("--photos", type=Path, default=Path("data/raw/images"), help="photos for the check against "
                   "PyTorch, the first 4 (default: %(default)s; seeded noise where it does not exist)")
    p.add_argument("--cards", type=Path, metavar="DIR", help="also write DIR/MODEL.md, the model card, from "
                   "params.yaml and the metrics")
    p.path("--metrics", "metrics/evaluate.json",
           "with --cards: the evaluate JSON; train_MODEL.json is read beside it")
    p.path("--counts", "metrics/preprocess.json", "with --cards: the preprocess counts")
