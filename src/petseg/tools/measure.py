"""The measurements of `petseg bench`: where petseg stands against the straightforward way, side by side.

Every figure is a median over repeats after a warm-up, in images per second (or seconds), taken
in one run on whatever machine runs it. Nothing here is asserted by a test: timings vary.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from petseg.core.config import Params
from petseg.core.config import Train as TrainParams
from petseg.core.device import (
    Precision,
    autocast,
    best_device,
    cpu_description,
    grad_scaler,
    half_precision,
    training_precision,
)
from petseg.data.arrays import Split
from petseg.data.decode import load_pair
from petseg.data.splits import pair_paths
from petseg.models.build import build_model, normalize
from petseg.models.spec import MODELS
from petseg.training.augment import train_transform
from petseg.training.dataset import SegmentationDataset
from petseg.training.loop import Run, cuda_determinism, make_loader, make_optimizer, train_epoch, train_step, validate
from petseg.training.losses import DiceBCELoss

FP32 = Precision("fp32", "torch's default")


def precision_of(settings: dict) -> Precision:
    """A path's precision: its `amp`, a precision name (a saved result from before: true for bf16)."""
    amp = settings["amp"]
    name = amp if isinstance(amp, str) else ("bf16" if amp else "fp32")
    return Precision(name, "bench")


class DecodingDataset(SegmentationDataset):
    """The straightforward input pipeline: decode JPEG and trimap and resize, per sample, every epoch."""

    def __init__(self, raw_dir: Path, stems: list[str], size: int, transform):
        self.raw_dir, self.stems, self.size, self.transform = raw_dir, stems, size, transform

    def __len__(self) -> int:
        return len(self.stems)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask, _ = load_pair(*pair_paths(self.raw_dir, self.stems[index]), self.size)
        return image, mask


def median_rate(func, n_items: int, repeats: int, warmup: int = 1) -> float:
    """Items per second of `func()`, the median of `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return n_items / statistics.median(times)


def window_rate(step, batch_size: int, warmup: float, seconds: float, repeats: int) -> float:
    """Images per second of `step()` (one batch a call): `warmup` seconds untimed, then the median of `repeats`
    windows of `seconds`. A window runs whole steps, so it ends a little past its length."""
    def images_per_second(window: float) -> float:
        begin, steps = time.perf_counter(), 0
        while time.perf_counter() < begin + window:
            step()
            steps += 1
        return steps * batch_size / (time.perf_counter() - begin)

    images_per_second(warmup)
    return statistics.median(images_per_second(seconds) for _ in range(repeats))


def loader_rate(dataset, batch_size: int, workers: int, repeats: int) -> float:
    loader = make_loader(dataset, batch_size, True, workers, seed=0)
    return median_rate(lambda: [None for _ in loader], len(loader) * batch_size, repeats)


def path_settings(train_params: TrainParams, device: torch.device, petseg: bool) -> dict:
    """What a path trains with: torch's defaults (fp32, NCHW, Adam's loop over tensors), or petseg's
    train params (channels_last, fused Adam, AMP as train.amp chooses, deterministic or fastest GPU kernels)."""
    if not petseg:
        return {"channels_last": False, "fused_adam": False, "amp": "fp32", "deterministic": None,
                "persistent_workers": False}
    return {"channels_last": train_params.channels_last, "fused_adam": train_params.fused_adam,
            "persistent_workers": train_params.persistent_workers,
            "amp": training_precision(train_params.amp, device).name,
            "precision": str(training_precision(train_params.amp, device)),
            "deterministic": train_params.deterministic if device.type == "cuda" else None}


def prepare(name: str, arch: dict, device: torch.device, settings: dict):
    """A fresh model, its Adam and the loss, set up as `settings` says."""
    if settings["deterministic"] is None:  # torch's defaults
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = torch.backends.cudnn.deterministic = False
            torch.use_deterministic_algorithms(False)
    else:
        cuda_determinism(device, settings["deterministic"])
    torch.manual_seed(0)
    model = build_model(name, arch).to(device)
    if settings["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model, make_optimizer(model.parameters(), 1e-3, settings["fused_adam"]), DiceBCELoss()


def random_batch(batch_size: int, size: int, device: torch.device, settings: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized random photos in the layout `settings` trains in, and random masks: what a step costs."""
    fmt = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    images = normalize(torch.randint(0, 255, (batch_size, 3, size, size), dtype=torch.uint8, device=device))
    masks = (torch.rand(batch_size, 1, size, size, device=device) > 0.5).float()
    return images.contiguous(memory_format=fmt), masks


def step_rate(name: str, arch: dict, size: int, batch_size: int, device: torch.device, settings: dict,
              repeats: int, steps: int = 5) -> float:
    """Training steps (forward, Dice+BCE, backward, Adam) per second, in images."""
    model, optimizer, loss_fn = prepare(name, arch, device, settings)
    images, masks = random_batch(batch_size, size, device, settings)
    amp = precision_of(settings)
    scaler = grad_scaler(device, amp)

    def run():
        for _ in range(steps):
            train_step(model, images, masks, loss_fn, optimizer, scaler, amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return median_rate(run, steps * batch_size, repeats)


@torch.inference_mode()
def inference_rate(name: str, arch: dict, size: int, batch_size: int, device: torch.device, repeats: int,
                   amp: Precision | None = None) -> float:
    model = build_model(name, arch).to(device).eval().to(memory_format=torch.channels_last)
    images = torch.randn(batch_size, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)

    def run():
        with autocast(device, amp or FP32):
            model(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return median_rate(run, batch_size, repeats)


def epoch_seconds(train_set, valid_set, name: str, arch: dict, batch_size: int, workers: int,
                  settings: dict, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """A whole epoch: loader, training steps and validation; median seconds."""
    model, optimizer, loss_fn = prepare(name, arch, device, settings)
    run = Run(model, model, loss_fn, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
              grad_scaler(device, precision_of(settings)),
              make_loader(train_set, batch_size, True, workers, 0, persistent=settings["persistent_workers"]),
              make_loader(valid_set, batch_size, False, 0, seed=0), device, precision_of(settings), settings["channels_last"])

    def one_epoch():
        train_epoch(run, 1)
        validate(run, 1)
    return 1 / median_rate(one_epoch, 1, repeats, warmup)


def tuning_cost(train: Split, valid: Split, params: Params, seeds=(0, 1)) -> list[dict]:
    """UNet learning-rate search with and without the median pruner: trial-epochs spent, lr found."""
    import tempfile

    from petseg.training.search import best_trial, open_storage, tune_model
    rows = []
    for pruning in (True, False):
        for seed in seeds:
            tune = params.tune
            if not pruning:
                tune = tune.model_copy(update={"pruner_warmup_epochs": tune.epochs})  # never pruned
            with tempfile.TemporaryDirectory() as tmp:
                storage = open_storage(f"{tmp}/bench.journal")
                study = tune_model("unet", params.unet.architecture(), train, valid,
                                   tune=tune, train_params=params.train_for("unet"), augment=params.augment,
                                   seed=seed, storage=storage, fingerprint={"seed": seed, "pruning": pruning})
                best = best_trial(study)
            rows.append({"pruning": pruning, "seed": seed, "trial_epochs": best["trial_epochs"],
                         "best_lr": best["best_lr"], "best_valid_dice": best["best_valid_dice"]})
    return rows


def precision_steps(archs: dict, sizes: list[tuple[int, int]], device: torch.device, repeats: int) -> dict:
    """Training-step images/s of each model at each (size, batch) in fp32 and bf16 autocast, NCHW and
    channels_last: where the precision and the layout pay on this machine."""
    rows = {}
    for name, arch in archs.items():
        for size, batch in sizes:
            rates = {}
            for amp in ("fp32", half_precision(device)):
                for channels_last in (False, True):
                    settings = {"channels_last": channels_last, "fused_adam": True, "amp": amp, "deterministic": None}
                    key = amp + ("_channels_last" if channels_last else "_nchw")
                    rates[key] = step_rate(name, arch, size, batch, device, settings, repeats)
            rows[f"{name}@{size}, batch {batch}"] = rates
    return rows


def full_data_epoch(folder: Path, params: Params, arch: dict, plain: dict, lean: dict, device: torch.device,
                    size: int = 128) -> dict:
    """One UNet epoch over the whole trainval split of `folder` (official layout) at `size` px, each way once."""
    import tempfile

    from petseg.data.arrays import load_split
    from petseg.data.preprocess import preprocess
    batch, workers = params.train_for("unet").batch_size, params.train.num_workers
    with tempfile.TemporaryDirectory() as tmp:
        preprocess(folder, Path(tmp), size, params.preprocess.valid_fraction, params.seed,
                   workers=params.preprocess.num_workers)
        train, valid = load_split(Path(tmp), "train"), load_split(Path(tmp), "valid")
        transform = train_transform(params.augment, size, 0)
        slow = epoch_seconds(DecodingDataset(folder, train.stems, size, transform),
                             DecodingDataset(folder, valid.stems, size, None), "unet", arch, batch, workers, plain,
                             device, repeats=1, warmup=0)
        fast = epoch_seconds(SegmentationDataset(train, transform), SegmentationDataset(valid), "unet", arch, batch,
                             workers, lean, device, repeats=1, warmup=0)
    return {"folder": str(folder), "image_size": size, "train_photos": len(train.stems),
            "valid_photos": len(valid.stems), "straightforward": slow, "petseg": fast, "speedup": slow / fast}


def machine() -> dict:
    info = {"cpu": cpu_description(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_bench(raw_dir: Path, train: Split, valid: Split, params: Params, repeats: int, tuning: bool = False,
              full_data: Path | None = None) -> dict:
    device = best_device()
    size, batch, workers = train.image_size, params.train.batch_size, params.train.num_workers
    archs = {name: params.model(name).architecture() for name in MODELS}
    plain, lean = (path_settings(params.train, device, petseg) for petseg in (False, True))
    transform = train_transform(params.augment, size, 0)
    straightforward = DecodingDataset(raw_dir, train.stems, size, transform)
    arrays = SegmentationDataset(train, transform)
    result = {"machine": machine(), "device": str(device), "image_size": size, "batch_size": batch,
              "num_workers": workers, "repeats": repeats, "petseg_settings": lean}
    step_rate("unet", archs["unet"], size, batch, device, lean, 1)  # untimed: oneDNN's first-use setup
    result["input_pipeline_img_per_s"] = {
        "decode_per_sample": loader_rate(straightforward, batch, workers, repeats),
        "preprocessed_arrays": loader_rate(arrays, batch, workers, repeats)}
    result["train_step_img_per_s"] = {}
    for name, arch in archs.items():
        for px in (128, 256):
            slow = step_rate(name, arch, px, batch, device, plain, repeats)
            fast = step_rate(name, arch, px, batch, device, lean, repeats)
            result["train_step_img_per_s"][f"{name}@{px}"] = {"fp32_nchw": slow, "petseg": fast,
                                                              "speedup": fast / slow}
    name, arch = "unet", archs["unet"]
    # The straightforward epoch decodes the validation photos per sample too, as the reference did.
    slow = epoch_seconds(straightforward, DecodingDataset(raw_dir, valid.stems, size, None), name, arch, batch,
                         workers, plain, device, repeats)
    fast = epoch_seconds(arrays, SegmentationDataset(valid), name, arch, batch, workers, lean, device, repeats)
    result["epoch_seconds"] = {"model": name, "straightforward": slow, "petseg": fast, "speedup": slow / fast}
    result["inference_img_per_s"] = {name: inference_rate(name, arch, size, params.evaluate.batch_size,
                                                          device, repeats, precision_of(lean)) for name, arch in archs.items()}
    result["precision_steps_img_per_s"] = precision_steps(archs, [(size, batch), (256, 4)], device, repeats)
    if full_data is not None:
        result["full_data_epoch_seconds"] = full_data_epoch(full_data, params, arch, plain, lean, device)
    if tuning:
        result["tuning"] = tuning_cost(train, valid, params)
    return result


def settings_text(settings: dict, workers: int) -> str:
    words = ["channels_last" if settings["channels_last"] else "NCHW"]
    if workers:
        words.append("persistent workers" if settings["persistent_workers"] else "workers re-forked each epoch")
    words += ["fused Adam" if settings["fused_adam"] else "Adam",
              settings.get("precision") or ("AMP" if settings["amp"] is True else precision_of(settings).name)]
    if settings["deterministic"] is not None:
        words.append("deterministic kernels" if settings["deterministic"] else "cudnn.benchmark")
    return ", ".join(words)


def table(result: dict) -> str:
    m = result["machine"]
    where = m.get("gpu") or f"CPU {m['cpu']}, {m['threads']} threads"
    lines = [f"`petseg bench` on {where}, torch {m['torch']}; {result['image_size']} px, batch "
             f"{result['batch_size']}, {result['num_workers']} loader workers, median of {result['repeats']}; "
             f"petseg = {settings_text(result['petseg_settings'], result['num_workers'])}", "",
             "| what | straightforward | petseg | ratio |", "| --- | --- | --- | --- |"]
    ip = result["input_pipeline_img_per_s"]
    lines.append(f"| input pipeline, img/s | {ip['decode_per_sample']:.1f} (decode JPEG per sample) | "
                 f"{ip['preprocessed_arrays']:.1f} (uint8 arrays) | "
                 f"{ip['preprocessed_arrays'] / ip['decode_per_sample']:.2f}x |")
    for key, r in result["train_step_img_per_s"].items():
        lines.append(f"| train step {key}, img/s | {r['fp32_nchw']:.1f} (fp32 NCHW) | {r['petseg']:.1f} | "
                     f"{r['speedup']:.2f}x |")
    e = result["epoch_seconds"]
    lines.append(f"| whole epoch ({e['model']}), s | {e['straightforward']:.1f} | {e['petseg']:.1f} | "
                 f"{e['speedup']:.2f}x |")
    if "full_data_epoch_seconds" in result:
        f = result["full_data_epoch_seconds"]
        lines.append(f"| full-data epoch (unet, {f['train_photos']} + {f['valid_photos']} photos at {f['image_size']} px), s "
                     f"| {f['straightforward']:.1f} | {f['petseg']:.1f} | {f['speedup']:.2f}x |")
    for name, rate in result["inference_img_per_s"].items():
        lines.append(f"| inference {name}, img/s | | {rate:.1f} | |")
    if "precision_steps_img_per_s" in result:
        lines += ["", "Training step (fused Adam), img/s, by precision and memory layout:", "",
                  "| model | fp32 NCHW | fp32 channels_last | bf16 NCHW | bf16 channels_last | best / fp32 NCHW |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key, r in result["precision_steps_img_per_s"].items():
            lines.append(f"| {key} | {r['fp32_nchw']:.1f} | {r['fp32_channels_last']:.1f} | {r['bf16_nchw']:.1f} | "
                         f"{r['bf16_channels_last']:.1f} | {max(r.values()) / r['fp32_nchw']:.2f}x |")
    if "tuning" in result:
        lines += ["", "| UNet lr search | seed | trial-epochs | best lr | best valid Dice |", "| --- | --- | --- | --- | --- |"]
        for r in result["tuning"]:
            lines.append(f"| {'median pruner' if r['pruning'] else 'no pruning'} | {r['seed']} | {r['trial_epochs']} | "
                         f"{r['best_lr']:.2e} | {r['best_valid_dice']:.4f} |")
    return "\n".join(lines)
