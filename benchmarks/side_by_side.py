"""Two trainings at once, one core each, against one after the other with every core: training-step
images per second of the UNet and the ResNet34-UNet at one size and batch, as params.yaml trains them.

    python benchmarks/side_by_side.py                      # 128 px, batch 16: a Markdown table on stdout
    python benchmarks/side_by_side.py --seconds 2 --repeats 1 --warmup 1   # a quick check that it runs

Each rate is measured in a child process, the median of timed windows after a warm-up: alone with every core, alone
with one thread, and beside the other model's child (both started at once, one thread each, so their windows
overlap). "Together" is the wall time of one epoch of each model side by side (the slower one finishing
alone on its one thread) over the time of the two epochs one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
MODELS = ("unet", "resnet34_unet")


def worker(model: str, size: int, batch: int, warmup: float, seconds: float, repeats: int) -> None:
    """Train steps for `warmup`, then `repeats` windows of `seconds`; print the median images per second."""
    import torch

    from petseg.core.config import load_params
    from petseg.core.device import grad_scaler
    from petseg.tools.measure import path_settings, precision_of, prepare, random_batch, window_rate
    from petseg.training.loop import train_step

    params = load_params(REPO / "params.yaml")
    cpu = torch.device("cpu")
    settings = path_settings(params.train, cpu, True)
    net, optimizer, loss_fn = prepare(model, params.model(model).architecture(), cpu, settings)
    images, masks = random_batch(batch, size, cpu, settings)
    amp = precision_of(settings)
    scaler = grad_scaler(cpu, amp)

    rate = window_rate(lambda: train_step(net, images, masks, loss_fn, optimizer, scaler, amp), batch, warmup, seconds,
                       repeats)
    print(json.dumps({"model": model, "rate": rate}))


def measure(models: list[str], threads: int, args) -> dict[str, float]:
    """Start one worker per model at once, each with `threads` threads; their images per second."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--size", str(args.size), "--batch", str(args.batch),
           "--warmup", str(args.warmup), "--seconds", str(args.seconds), "--repeats", str(args.repeats), "--worker"]
    procs = [subprocess.Popen(cmd + [m], env=env, stdout=subprocess.PIPE, text=True) for m in models]
    rates = {}
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"side_by_side: a worker failed (exit {proc.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        rates[result["model"]] = result["rate"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=MODELS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.size, args.batch, args.warmup, args.seconds, args.repeats)

    from petseg.core.device import cpu_description
    cores = os.cpu_count() or 1
    print(f"{cpu_description()}; {cores} cores; {args.size} px, batch {args.batch}; training-step images/s, the median "
          f"of {args.repeats} windows of {args.seconds:g} s after {args.warmup:g} s of warm-up", file=sys.stderr, flush=True)
    alone = {m: measure([m], cores, args)[m] for m in MODELS}
    single = {m: measure([m], 1, args)[m] for m in MODELS}
    beside = measure(list(MODELS), 1, args)
    # one epoch of each (one unit of images): one after the other, or side by side, the slower one ending alone
    sequential = sum(1 / alone[m] for m in MODELS)
    first = max(MODELS, key=beside.get)
    other = next(m for m in MODELS if m != first)
    together = 1 / beside[first] + (1 - beside[other] / beside[first]) / single[other]
    print("| model | alone, {0} threads | alone, 1 thread | beside the other, 1 thread each |".format(cores))
    print("| --- | --- | --- | --- |")
    for m in MODELS:
        print(f"| {m} | {alone[m]:.1f} | {single[m]:.1f} | {beside[m]:.1f} |")
    print(f"\nOne epoch of each: side by side {together / sequential:.2f} of the time one after the other takes.")


if __name__ == "__main__":
    main()
