"""Inference speed, images per second: PyTorch fp32, PyTorch in the precision training uses (bf16 autocast
where `train.amp: auto` turns it on, see petseg.core.device), and onnxruntime, for both models at two sizes.

    python benchmarks/inference.py --out docs/inference.md            # the measurement
    python benchmarks/inference.py --repeats 1 --batches 1 --out -   # a quick check that it runs

Each model is built with random weights at its params.yaml width (speed does not depend on the weights) and
exported with `petseg.inference.onnx_export.export_onnx`; each timing is the median of `--repeats` runs of `--batches`
batches, after one warm-up batch. Needs `pip install -e '.[export]'`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from petseg.core.config import Params, load_params  # noqa: E402
from petseg.core.device import Precision, autocast, cpu_description, training_precision  # noqa: E402
from petseg.core.io import atomic_path  # noqa: E402
from petseg.inference.onnx_export import export_onnx  # noqa: E402
from petseg.inference.onnx_model import load_onnx  # noqa: E402
from petseg.models.build import build_model, normalize  # noqa: E402
from petseg.models.spec import MODELS  # noqa: E402


def images_per_second(run, batch: np.ndarray, batches: int, repeats: int) -> float:
    run(batch)  # warm-up: first-call allocations and kernel selection
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            run(batch)
        seconds.append(time.perf_counter() - start)
    return len(batch) * batches / statistics.median(seconds)


def torch_runner(model: torch.nn.Module, precision: Precision):
    device = torch.device("cpu")
    model = model.eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run(images: np.ndarray):
        x = normalize(torch.from_numpy(images).permute(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            return model(x).float()
    return run


def measure(params: Params, sizes: list[int], batch_size: int, batches: int, repeats: int) -> list[dict]:
    device = torch.device("cpu")
    trained = training_precision(params.train.amp, device)
    rows, rng = [], np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            torch.manual_seed(0)
            arch = params.model(name).architecture()
            model = build_model(name, arch).eval()
            onnx_path = Path(tmp) / f"{name}.onnx"
            export_onnx(model, {"model": name, "arch": arch, "image_size": sizes[0],
                                "threshold": 0.5, "tta_hflip": False}, onnx_path)
            session, _ = load_onnx(onnx_path)
            for size in sizes:
                batch = rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
                row = {"model": MODELS[name], "size": size,
                       "fp32": images_per_second(torch_runner(model, Precision("fp32", "fp32")), batch, batches, repeats),
                       "training precision": (images_per_second(torch_runner(model, trained), batch, batches, repeats)
                                              if trained.amp else None),
                       "onnxruntime": images_per_second(session.logits, batch, batches, repeats)}
                rows.append(row)
                print(f"{row['model']} {size} px: " + ", ".join(
                    f"{k} {v:.1f}/s" for k, v in row.items() if isinstance(v, float)), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], params: dict, batch_size: int, batches: int, repeats: int) -> str:
    precision = str(training_precision(params.train.amp, torch.device("cpu")))
    lines = [
        "# Inference speed",
        "",
        f"Images per second on {cpu_description()}, {torch.get_num_threads()} threads, batches of {batch_size}; "
        f"median of {repeats} runs of {batches} batches each, after a warm-up batch. Written by "
        "`python benchmarks/inference.py --out docs/inference.md`; models at their params.yaml widths, one "
        "forward pass per image (no TTA).",
        "",
        f"Training precision here: {precision}. onnxruntime {_version('onnxruntime')} computes in fp32; "
        f"PyTorch {torch.__version__.split('+')[0]}, Python {platform.python_version()}.",
        "",
        "| model | size (px) | PyTorch fp32 | PyTorch, training precision | onnxruntime fp32 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        trained = "same as fp32" if r["training precision"] is None else f"{r['training precision']:.1f}"
        lines.append(f"| {r['model']} | {r['size']} | {r['fp32']:.1f} | {trained} | {r['onnxruntime']:.1f} |")
    return "\n".join(lines) + "\n"


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="for the model widths and train.amp")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 256], help="square input sides (multiples of 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=5, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median counts")
    parser.add_argument("--out", default="docs/inference.md", help="the Markdown file, or - for stdout only")
    args = parser.parse_args()
    params = load_params(args.params)
    rows = measure(params, args.sizes, args.batch_size, args.batches, args.repeats)
    text = table(rows, params, args.batch_size, args.batches, args.repeats)
    print(text, end="")
    if args.out != "-":
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
