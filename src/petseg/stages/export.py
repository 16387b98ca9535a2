"""Stage `export`: each checkpoint as an ONNX model, its logits checked against PyTorch with onnxruntime,
and (with --cards) a model card per model written from the params and the metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.models.spec import default_checkpoints

HELP = ("write each checkpoint as an ONNX model (uint8 RGB NHWC in, logits out, normalisation inside; threshold "
        "and TTA in its metadata), check its logits against PyTorch with onnxruntime, and with --cards write a "
        "model card per model. Example: petseg export --checkpoint models/unet.pt --out models/unet.onnx")
PARAMS = "if present"  # needed only for the model cards
GIT_OUTPUTS = ("cards",)  # the options naming outputs git tracks: put back if the stage fails (cli.py)


def run(args, params) -> str:
    from petseg.core.io import whole_outputs
    from petseg.inference import settings as inference
    from petseg.inference.onnx_export import PARITY_TOLERANCE, check_parity, export_onnx, parity_photos
    from petseg.models.checkpoint import load_checkpoint
    outs = args.out or [Path(c).with_suffix(".onnx") for c in args.checkpoint]
    if len(outs) != len(args.checkpoint):
        raise PetsegError(f"--out: {len(outs)} paths for {len(args.checkpoint)} checkpoints; give one .onnx each")
    if args.cards is not None and (params is None or len(args.trained or []) != len(args.checkpoint)):
        raise PetsegError("--cards: a model card needs the project's params.yaml (or --params) and --trained, "
                          "one training summary per checkpoint")
    loaded = [(path, *load_checkpoint(path)) for path in args.checkpoint]  # every file checked before any work
    settings = inference.DEFAULTS if params is None else inference.from_params(params)
    if args.cards is not None:
        from petseg.inference.card import model_card
        evaluated, counts = json.loads(Path(args.metrics).read_text()), json.loads(Path(args.counts).read_text())
    photos, source = parity_photos(args.photos)
    done = []
    inputs = [*args.checkpoint, *([args.metrics, args.counts, *args.trained] if args.cards is not None else [])]
    # whole or nothing: the ONNX models and cards are renamed into place together, once every one passed
    with whole_outputs(inputs) as outputs:
        cards = [Path(args.cards) / f"{meta['model']}.md" for _, _, meta in loaded] if args.cards is not None else []
        for final in [*outs, *cards]:
            outputs.reserve(final)  # an output onto a checkpoint or onto another output is refused before any work
        for i, ((path, model, meta), out) in enumerate(zip(loaded, outs)):
            print(f"petseg export: {path} -> {out}", file=sys.stderr, flush=True)
            tmp = outputs.path(out)  # a model that fails its check never replaces the one there
            export_onnx(model, meta | settings.record(), tmp)
            try:
                parity = check_parity(model, tmp, photos, meta["image_size"])
            except PetsegError as err:  # named by the file the user asked for, not the temporary one
                raise PetsegError(str(err).replace(str(tmp), str(out))) from None
            print(f"petseg export: {out}: largest |logit difference| from PyTorch "
                  + ", ".join(f"{diff:.1e} at {shape} px" for shape, diff in parity.items()), file=sys.stderr)
            done.append(f"{out} (max logit difference {max(parity.values()):.1e})")
            if args.cards is not None:
                name = meta["model"]
                trained = json.loads(Path(args.trained[i]).read_text())
                card = model_card(name, meta, settings, params, counts, trained, evaluated[name], parity, source,
                                  PARITY_TOLERANCE)
                outputs.path(cards[i]).write_text(card)
                done.append(f"{cards[i]}")
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
    p.path("--metrics", "metrics/evaluate.json", "with --cards: the evaluate JSON")
    p.add_argument("--trained", type=Path, nargs="+", help="with --cards: each checkpoint's training summary "
                   "(metrics/train_MODEL.json), in the same order")
    p.path("--counts", "metrics/preprocess.json", "with --cards: the preprocess counts")
