"""The training loop: build a run, train an epoch, validate, keep the best weights, save a resumable state."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler, Subset

from petseg.core.config import Augment as AugmentParams
from petseg.core.config import Train as TrainParams
from petseg.core.device import Precision, autocast, best_device, grad_scaler, training_precision
from petseg.core.errors import Diverged, PetsegError, brief
from petseg.core.io import atomic_path, fingerprint
from petseg.core.metrics import confusion_per_image, dice_score, to_confusion
from petseg.core.progress import note, progress
from petseg.data.arrays import Split
from petseg.models.build import build_model, normalize
from petseg.training.augment import train_transform
from petseg.training.dataset import AugmentationSeeds, SegmentationDataset
from petseg.training.losses import DiceBCELoss

# The epoch rows' Dice (and so the best epoch) is read at 0.5: evaluate.threshold is evaluate's, so that
# changing it never retrains a model.
TRAINING_THRESHOLD = 0.5


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
    world, device = int(os.environ.get("WORLD_SIZE", "1")), best_device()
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


def shuffle_generator(seed: int) -> torch.Generator:
    """The epoch's shuffle generator: seeded, then one draw spent, so that its permutation is the one a loader
    sharing a single generator draws after the workers' base seed (the order committed runs trained in)."""
    generator = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return generator


def make_loader(dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                sampler=None, persistent: bool = False) -> DataLoader:
    """Batches of `dataset`; with a transform, each sample carries its augmentation seed (`start_epoch`
    sets the epoch's), so the run is the same for any number of workers, persistent or not."""
    generator = torch.Generator().manual_seed(seed)  # the workers' base seed, reseeded by start_epoch
    if sampler is None:  # the shuffle has its own generator: a persistent loader draws no base seed after epoch 1
        sampler = RandomSampler(dataset, generator=shuffle_generator(seed)) if shuffle else SequentialSampler(dataset)
    if getattr(dataset, "transform", None) is not None:
        sampler = AugmentationSeeds(sampler)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=shuffle, num_workers=num_workers,
                      persistent_workers=persistent and num_workers > 0, generator=generator,
                      pin_memory=torch.cuda.is_available())


def start_epoch(loader: DataLoader, seed: int, epoch: int, size: int | None = None) -> None:
    """Seed the epoch's shuffle and augmentation from (seed, epoch); `size`: the side its crops are resized to
    (None: the dataset's image size)."""
    this_epoch = epoch_seed(seed, epoch)
    loader.generator.manual_seed(this_epoch)
    sampler = loader.sampler
    if isinstance(sampler, AugmentationSeeds):
        sampler.epoch_seed, sampler.epoch_size = this_epoch, size
        sampler = sampler.sampler
    if isinstance(sampler, RandomSampler):
        sampler.generator = shuffle_generator(this_epoch)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)  # the same permutation on every rank, each takes its share


def crop_size(epoch: int, epochs: int, train_params: TrainParams) -> int | None:
    """Epoch `epoch`'s training side under progressive resizing: train.progressive_size for the first
    train.progressive_fraction of the epochs (rounded down), then None, the full image size."""
    return train_params.progressive_size if epoch <= train_params.small_epochs(epochs) else None


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


def train_step(model, images, masks, loss_fn, optimizer, scaler,
               precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, Dice+BCE, backward and Adam on one batch; the logits and the loss. A loss that is not finite
    stops before the weights change."""
    with autocast(images.device, precision):
        logits = model(images)
    loss = loss_fn(logits, masks)  # in fp32: the loss casts the logits
    if not torch.isfinite(loss):
        raise Diverged(f"loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return logits, loss


@dataclass
class Run:
    """What one training run works with, built once by `build_run`."""
    net: torch.nn.Module            # the model; `model` is the same one wrapped for DDP under torchrun
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    train_loader: DataLoader
    valid_loader: DataLoader
    device: torch.device
    precision: Precision
    channels_last: bool
    rank: int = 0
    world: int = 1


def train_epoch(run: Run, epoch: int, desc: str = "") -> tuple[float, torch.Tensor]:
    """One pass over the training photos, a step per batch; the mean loss and the (N, 4) confusion counts."""
    run.model.train()
    total_loss, n_images, counts = 0.0, 0, []
    for batch_index, batch in enumerate(progress(run.train_loader, desc, len(run.train_loader), "batch"), 1):
        images, masks = to_device(batch, run.device, run.channels_last)
        try:
            logits, loss = train_step(run.model, images, masks, run.loss_fn, run.optimizer, run.scaler, run.precision)
        except Diverged as err:
            raise Diverged(f"{err} in epoch {epoch}, batch {batch_index}: stopped before saving; "
                                     "lower the learning rate") from None
        run.scheduler.step()
        total_loss += loss.item() * len(images)
        n_images += len(images)
        counts.append(confusion_per_image(torch.sigmoid(logits.detach()) > TRAINING_THRESHOLD, masks > 0.5).cpu())
    return total_loss / n_images, torch.cat(counts)


@torch.inference_mode()  # validation keeps no autograd state
def validate(run: Run, epoch: int) -> tuple[float, torch.Tensor]:
    """The validation photos scored by the model as it stands; the mean loss and the (N, 4) confusion counts."""
    run.net.eval()
    total_loss, n_images, counts = 0.0, 0, []
    for batch_index, batch in enumerate(progress(run.valid_loader, "validation", len(run.valid_loader), "batch"), 1):
        images, masks = to_device(batch, run.device, run.channels_last)
        with autocast(run.device, run.precision):
            logits = run.net(images)
        loss = run.loss_fn(logits, masks)
        if not torch.isfinite(loss):
            raise Diverged(f"loss is {loss.item()} in epoch {epoch}, batch {batch_index} of validation: "
                                     "stopped before saving; lower the learning rate")
        total_loss += loss.item() * len(images)
        n_images += len(images)
        counts.append(confusion_per_image(torch.sigmoid(logits) > TRAINING_THRESHOLD, masks > 0.5).cpu())
    return total_loss / n_images, torch.cat(counts)


@dataclass
class Result:
    history: list[dict]     # one row per epoch
    best_state: dict        # the weights of the best validation Dice
    best_epoch: int
    rank: int = 0           # under torchrun, only rank 0 writes outputs
    precision: str = "fp32"  # what it computed in (fp32, bf16, fp16): the checkpoint records it


def build_run(name: str, arch: dict, train: Split, valid: Split, *, lr: float, epochs: int, seed: int,
              train_params: TrainParams, augment: AugmentParams) -> Run:
    """The model, loaders, loss, Adam and schedule of a run, seeded: the same arguments build the same run."""
    seed_everything(seed)
    rank, world, device = setup_distributed()
    cuda_determinism(device, train_params.deterministic)
    image_size, channels_last = train.image_size, train_params.channels_last
    if train_params.batch_size % world:
        raise PetsegError(f"{name}'s batch size (train.batch_size, or {name}.batch_size where set): "
                          f"{train_params.batch_size} is not divisible by {world} processes")
    batch_size = train_params.batch_size // world  # train.batch_size is the global batch
    net = build_model(name, arch).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = DistributedDataParallel(net) if world > 1 else net
    small = train_params.progressive_size
    resized = {small: train_transform(augment, small, seed)} if small is not None else None
    train_set = SegmentationDataset(train, train_transform(augment, image_size, seed), resized)
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=seed, drop_last=True) if world > 1 else None
    train_loader = make_loader(train_set, batch_size, True, train_params.num_workers, seed, sampler,
                               train_params.persistent_workers)
    valid_set = SegmentationDataset(valid)  # each rank scores its own share; the counts are summed
    valid_loader = make_loader(Subset(valid_set, range(rank, len(valid_set), world)) if world > 1 else valid_set,
                               batch_size, False, 0, seed)
    optimizer = make_optimizer(model.parameters(), lr, train_params.fused_adam)
    precision = training_precision(train_params.amp, device)
    scheduler = make_scheduler(optimizer, train_params.scheduler, lr, epochs * len(train_loader),
                               train_params.warmup_fraction)
    return Run(net, model, DiceBCELoss(train_params.dice_weight, train_params.bce_weight), optimizer, scheduler,
               grad_scaler(device, precision), train_loader, valid_loader, device, precision, channels_last, rank,
               world)


def fit(name: str, arch: dict, train: Split, valid: Split, *, lr: float, epochs: int, seed: int,
        train_params: TrainParams, augment: AugmentParams, resume: Path | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> Result:
    """Train `name` from scratch (or from `resume`, the state saved after each finished epoch)."""
    run = build_run(name, arch, train, valid, lr=lr, epochs=epochs, seed=seed, train_params=train_params,
                    augment=augment)
    # train.amp auto decides by machine: a state of the other precision is not resumed
    run_id = fingerprint([name, arch, lr, epochs, seed, train_params.model_dump(), augment.model_dump(), train.stems,
                          valid.stems, run.world, run.precision.name])
    history, best_state, best_epoch = [], None, 0
    if resume is not None and Path(resume).is_file():
        try:
            state = torch.load(resume, map_location=run.device, weights_only=True)
        except Exception as err:  # a state petseg cannot read (a foreign or damaged file) is ignored, as one of other settings
            note(f"{name}: ignoring {resume}, not a readable state ({brief(err)})")
            state = {}
        if isinstance(state, dict) and state.get("run_id") == run_id:  # a state of other settings is ignored, not half-reused
            run.net.load_state_dict(state["model"])
            run.optimizer.load_state_dict(state["optimizer"])
            run.scheduler.load_state_dict(state["scheduler"])
            history, best_state, best_epoch = state["history"], state["best_state"], state["best_epoch"]
            note(f"{name}: resuming after epoch {len(history)} from {resume}")
    for epoch in range(len(history) + 1, epochs + 1):
        start = time.perf_counter()
        size = crop_size(epoch, epochs, train_params)
        start_epoch(run.train_loader, seed, epoch, size)
        lr_now = run.optimizer.param_groups[0]["lr"]
        train_loss, train_counts = reduce_epoch(*train_epoch(run, epoch, f"{name} epoch {epoch}/{epochs}"), run.world)
        valid_loss, valid_counts = reduce_epoch(*validate(run, epoch), run.world)
        row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
               "train_dice": dice_score(to_confusion(train_counts)),
               "valid_dice": dice_score(to_confusion(valid_counts)),
               "lr": lr_now, "seconds": round(time.perf_counter() - start, 2)}
        history.append(row)
        if best_state is None or row["valid_dice"] > history[best_epoch - 1]["valid_dice"]:
            best_state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in run.net.state_dict().items()}
            best_epoch = epoch
        if run.rank == 0:
            at = "" if size is None else f" at {size} px"
            note(f"{name} epoch {epoch}/{epochs}{at}: train loss {train_loss:.4f} dice {row['train_dice']:.4f}, "
                 f"valid loss {valid_loss:.4f} dice {row['valid_dice']:.4f}, {row['seconds']:.1f} s")
        if resume is not None and run.rank == 0:
            with atomic_path(resume) as tmp:
                torch.save({"run_id": run_id, "model": run.net.state_dict(), "optimizer": run.optimizer.state_dict(),
                            "scheduler": run.scheduler.state_dict(), "history": history,
                            "best_state": best_state, "best_epoch": best_epoch}, tmp)
        if on_epoch is not None:
            on_epoch(row)
    return Result(history, best_state, best_epoch, run.rank, run.precision.name)
