"""Training-step images per second of each model three ways: petseg's eager step (bf16 autocast where the CPU has
bf16), the same step under `torch.compile` (inductor), and bf16 weights with an fp32 master copy (no autocast,
so no weight casts inside the step). Each way runs in its own child process; the rounds interleave the ways.

    python benchmarks/step_variants.py                     # 128 px, batch 16, 2 rounds: a Markdown table on stdout
    python benchmarks/step_variants.py --seconds 1 --repeats 1 --warmup 1 --rounds 1 --models unet   # a quick check

A rate is the median of timed windows after a warm-up (compile's first step, which compiles, is timed apart);
a way's figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
MODELS = ("unet", "resnet34_unet")
WAYS = ("eager", "compile", "bf16-weights")


def master_weights_step(net, loss_fn, fused: bool):
    """A step on bf16 weights whose Adam updates an fp32 copy: what training without autocast's casts costs."""
    import torch

    net.to(torch.bfloat16)
    weights = list(net.parameters())
    master = [w.detach().float().clone().requires_grad_(True) for w in weights]
    optimizer = torch.optim.Adam(master, lr=1e-3, fused=fused or None)  # prepare's rate

    def step(images, masks):
        loss = loss_fn(net(images.to(torch.bfloat16)).float(), masks)
        for w in weights:
            w.grad = None
        loss.backward()
        for m, w in zip(master, weights):
            m.grad = w.grad.float()
        optimizer.step()
        with torch.no_grad():
            torch._foreach_copy_(weights, master)
    return step


def worker(model: str, way: str, args) -> None:
    """Train steps of `model` the `way` way; print the first step's seconds and the median images per second."""
    import torch

    from petseg.core.config import load_params
    from petseg.core.device import grad_scaler
    from petseg.tools.measure import path_settings, precision_of, prepare, random_batch, window_rate
    from petseg.training.loop import train_step

    params = load_params(REPO / "params.yaml")
    cpu = torch.device("cpu")
    settings = path_settings(params.train, cpu, True)
    net, optimizer, loss_fn = prepare(model, params.model(model).architecture(), cpu, settings)
    images, masks = random_batch(args.batch, args.size, cpu, settings)
    amp = precision_of(settings)
    scaler = grad_scaler(cpu, amp)
    if way == "bf16-weights":
        step = master_weights_step(net, loss_fn, settings["fused_adam"])
    else:
        net = torch.compile(net) if way == "compile" else net

        def step(images, masks):
            train_step(net, images, masks, loss_fn, optimizer, scaler, amp)

    begin = time.perf_counter()
    step(images, masks)
    first = time.perf_counter() - begin
    rate = window_rate(lambda: step(images, masks), args.batch, args.warmup, args.seconds, args.repeats)
    print(json.dumps({"model": model, "way": way, "first_step": first, "rate": rate}))


def measure(model: str, way: str, args) -> dict:
    cmd = [sys.executable, __file__, "--size", str(args.size), "--batch", str(args.batch), "--warmup", str(args.warmup),
           "--seconds", str(args.seconds), "--repeats", str(args.repeats), "--worker", model, way]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"step_variants: the {way} worker of {model} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "WAY"))
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker, args)

    from petseg.core.device import cpu_description
    print(f"{cpu_description()}; {os.cpu_count()} cores; {args.size} px, batch {args.batch}; training-step images/s, "
          f"the median over {args.rounds} rounds of the median of {args.repeats} windows of {args.seconds:g} s "
          f"after {args.warmup:g} s of warm-up", file=sys.stderr, flush=True)
    results = {(m, w): [] for m in args.models for w in WAYS}
    for round_ in range(args.rounds):
        for m in args.models:
            for w in WAYS:
                results[m, w].append(measure(m, w, args))
                print(f"round {round_ + 1}: {m} {w} {results[m, w][-1]['rate']:.1f} images/s", file=sys.stderr, flush=True)
    print("| model | eager | torch.compile (first step) | bf16 weights, fp32 master |")
    print("| --- | --- | --- | --- |")
    for m in args.models:
        rate = {w: statistics.median(r["rate"] for r in results[m, w]) for w in WAYS}
        compile_seconds = statistics.median(r["first_step"] for r in results[m, "compile"])
        print(f"| {m} | {rate['eager']:.1f} | {rate['compile']:.1f} ({compile_seconds:.0f} s) "
              f"| {rate['bf16-weights']:.1f} |")


if __name__ == "__main__":
    main()
