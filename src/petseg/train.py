"""The training loop: train an epoch, validate, remember the best weights, save a resumable state."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler, Subset

from petseg.augment import AugmentationSeeds, normalize, train_transform
from petseg.data import SegmentationDataset, Split
from petseg.device import autocast, best_device, grad_scaler, use_amp
from petseg.io import atomic_path
from petseg.losses import DiceBCELoss
from petseg.metrics import confusion_per_image, dice_score, to_confusion
from petseg.models import build_model
from petseg.progress import note, progress


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch's randomness (shuffle, augmentation) is a function of (seed, epoch) alone, so a resumed
    run draws exactly what an uninterrupted one would have, and every DDP rank augments a photo alike."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def setup_distributed() -> tuple[int, int, torch.device]:
    """Rank, world size and device; under `torchrun` joins the process group (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else best_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank() if world > 1 else 0), world, device


def cuda_determinism(device: torch.device, deterministic: bool) -> None:
    """On a GPU, deterministic kernels (byte-identical reruns) or cuDNN's fastest picks (`cudnn.benchmark`).
    The CPU kernels petseg uses are deterministic already, so the CPU is left alone."""
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reads it at its first call
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def make_loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                sampler=None, persistent: bool = False) -> DataLoader:
    """Batches of `dataset`; with a transform, each sample carries its augmentation seed (`start_epoch`
    sets the epoch's), so the run is the same for any number of workers, persistent or not."""
    generator = torch.Generator().manual_seed(seed)  # the shuffle, reseeded by start_epoch
    if sampler is None:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    if getattr(dataset, "transform", None) is not None:
        sampler = AugmentationSeeds(sampler)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=shuffle, num_workers=num_workers,
                      persistent_workers=persistent and num_workers > 0, generator=generator,
                      pin_memory=torch.cuda.is_available())


def start_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Seed the epoch's shuffle and augmentation from (seed, epoch)."""
    this_epoch = epoch_seed(seed, epoch)
    loader.generator.manual_seed(this_epoch)
    sampler = loader.sampler
    if isinstance(sampler, AugmentationSeeds):
        sampler.epoch_seed = this_epoch
        sampler = sampler.sampler
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)  # the same permutation on every rank, each takes its share


def reduce_epoch(loss: float, counts: torch.Tensor, world: int) -> tuple[float, torch.Tensor]:
    """Mean loss and summed (1, 4) confusion counts over all ranks."""
    if world == 1:
        return loss, counts
    totals = torch.tensor([loss * len(counts), len(counts), *counts.sum(0).tolist()], dtype=torch.float64)
    dist.all_reduce(totals)
    return (totals[0] / totals[1]).item(), totals[2:].round().long()[None]


def make_scheduler(optimizer, name: str, lr: float, total_steps: int, warmup_fraction: float):
    if name == "onecycle" and total_steps >= 3:  # each of its two phases needs a step
        pct_start = min(max(warmup_fraction, 2 / total_steps), 1 - 1 / total_steps)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps,
                                                   pct_start=pct_start)
    if name == "cosine":
        warmup = max(1, round(total_steps * warmup_fraction))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total_steps - warmup)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def make_optimizer(parameters, lr: float, fused: bool) -> torch.optim.Adam:
    """Adam; `fused` updates all tensors in one kernel (CPU and GPU), instead of a loop of small ops."""
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


def to_device(batch, device: torch.device, channels_last: bool):
    """Move a uint8 batch to `device`, normalise the photos, and make the masks float."""
    images, masks = (t.to(device, non_blocking=True) for t in batch)
    images = normalize(images)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.float()


def run_epoch(model, loader, loss_fn, device, channels_last, epoch, threshold=0.5, optimizer=None, scheduler=None,
              desc: str = "", amp: bool = False, scaler: torch.amp.GradScaler | None = None):
    """One pass over `loader`, training if an optimizer is given; returns mean loss and (N, 4) counts."""
    model.train(optimizer is not None)
    total_loss, n_images, counts = 0.0, 0, []
    scaler = scaler or torch.amp.GradScaler(enabled=False)
    with nullcontext() if optimizer is not None else torch.inference_mode():  # validation keeps no autograd state
        for batch_index, batch in enumerate(progress(loader, desc, len(loader), "batch"), 1):
            images, masks = to_device(batch, device, channels_last)
            with autocast(device, amp):
                logits = model(images)
            loss = loss_fn(logits, masks)  # in fp32: the loss casts the logits
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} in epoch {epoch}, batch {batch_index}: "
                                         "stopped before saving; lower the learning rate")
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
            total_loss += loss.item() * len(images)
            n_images += len(images)
            counts.append(confusion_per_image(torch.sigmoid(logits.detach()) > threshold, masks > 0.5).cpu())
    return total_loss / n_images, torch.cat(counts)


@dataclass
class Result:
    history: list[dict]     # one row per epoch
    best_state: dict        # the weights of the best validation Dice
    best_epoch: int
    rank: int = 0           # under torchrun, only rank 0 writes outputs


def fingerprint(*parts) -> str:
    return hashlib.md5(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def fit(name: str, arch: dict, train: Split, valid: Split, *, lr: float, epochs: int, seed: int,
        train_params: dict, augment_params: dict, resume: Path | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> Result:
    """Train `name` from scratch (or from `resume`, the state saved after each finished epoch)."""
    seed_everything(seed)
    rank, world, device = setup_distributed()
    cuda_determinism(device, train_params["deterministic"])
    image_size, channels_last = train.images.shape[1], train_params["channels_last"]
    if train_params["batch_size"] % world:
        raise ValueError(f"train.batch_size: {train_params['batch_size']} is not divisible by {world} processes")
    batch_size = train_params["batch_size"] // world  # train.batch_size is the global batch
    net = build_model(name, arch).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = DistributedDataParallel(net) if world > 1 else net
    train_set = SegmentationDataset(train, train_transform(augment_params, image_size, seed))
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=seed, drop_last=True) if world > 1 else None
    train_loader = make_loader(train_set, batch_size, True, train_params["num_workers"], seed, sampler,
                               train_params["persistent_workers"])
    valid_set = SegmentationDataset(valid)  # each rank scores its own share; the counts are summed
    valid_loader = make_loader(Subset(valid_set, range(rank, len(valid_set), world)) if world > 1 else valid_set,
                               batch_size, False, 0, seed)
    loss_fn = DiceBCELoss(train_params["dice_weight"], train_params["bce_weight"])
    optimizer = make_optimizer(model.parameters(), lr, train_params["fused_adam"])
    amp = use_amp(train_params["amp"], device)
    scaler = grad_scaler(device, amp)
    scheduler = make_scheduler(optimizer, train_params["scheduler"], lr, epochs * len(train_loader),
                               train_params["warmup_fraction"])
    run_id = fingerprint(name, arch, lr, epochs, seed, train_params, augment_params, train.stems, valid.stems, world,
                         amp)  # train.amp auto decides by machine: a state of the other precision is not resumed
    history, best_state, best_epoch = [], None, 0
    if resume is not None and Path(resume).is_file():
        state = torch.load(resume, map_location=device, weights_only=True)
        if state["run_id"] == run_id:  # a state of other settings is ignored, not half-reused
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, best_state, best_epoch = state["history"], state["best_state"], state["best_epoch"]
            note(f"{name}: resuming after epoch {len(history)} from {resume}")
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        start_epoch(train_loader, seed, epoch)
        lr_now = optimizer.param_groups[0]["lr"]
        train_loss, train_counts = reduce_epoch(*run_epoch(
            model, train_loader, loss_fn, device, channels_last, epoch, optimizer=optimizer, scheduler=scheduler,
            desc=f"{name} epoch {epoch}/{epochs}", amp=amp, scaler=scaler), world)
        valid_loss, valid_counts = reduce_epoch(*run_epoch(net, valid_loader, loss_fn, device, channels_last, epoch,
                                                           amp=amp), world)
        row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
               "train_dice": dice_score(to_confusion(train_counts)),
               "valid_dice": dice_score(to_confusion(valid_counts)),
               "lr": lr_now, "seconds": round(time.perf_counter() - start, 2)}
        history.append(row)
        if best_state is None or row["valid_dice"] > history[best_epoch - 1]["valid_dice"]:
            best_state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in net.state_dict().items()}
            best_epoch = epoch
        if rank == 0:
            note(f"{name} epoch {epoch}/{epochs}: train loss {train_loss:.4f} dice {row['train_dice']:.4f}, "
                 f"valid loss {valid_loss:.4f} dice {row['valid_dice']:.4f}, {row['seconds']:.1f} s")
        if resume is not None and rank == 0:
            with atomic_path(resume) as tmp:
                torch.save({"run_id": run_id, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "history": history,
                            "best_state": best_state, "best_epoch": best_epoch}, tmp)
        if on_epoch is not None:
            on_epoch(row)
    return Result(history, best_state, best_epoch, rank)
