"""Augmentation (albumentations 2.0.8, seeded per sample) and input normalisation."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home on import otherwise

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from petseg.lib.config import Augment  # noqa: E402

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked while it is busy can
# hang forever. Parallelism comes from the DataLoader workers instead.
cv2.setNumThreads(0)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(params: Augment, image_size: int, seed: int) -> A.Compose:
    """The seed report's training augmentations, ported from albumentations 1.x to 2.0.8."""
    jitter = params.color_jitter
    transform = A.Compose([
        A.RandomResizedCrop(size=(image_size, image_size), scale=tuple(params.crop_scale)),
        A.HorizontalFlip(p=params.hflip_p),
        A.VerticalFlip(p=params.vflip_p),
        # ShiftScaleRotate of 1.x is Affine in 2.x
        A.Affine(translate_percent=(-params.shift, params.shift),
                 scale=(1 - params.scale, 1 + params.scale),
                 rotate=(-params.rotate, params.rotate),
                 border_mode=cv2.BORDER_REFLECT_101, p=params.affine_p),
        A.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=jitter,
                      p=params.color_jitter_p),
        A.RGBShift(r_shift_limit=params.rgb_shift, g_shift_limit=params.rgb_shift,
                   b_shift_limit=params.rgb_shift, p=params.rgb_shift_p),
        # 2.x's default std is about 15 times the 1.x default (var 10..50 on 0..255)
        A.GaussNoise(std_range=tuple(params.noise_std), p=params.noise_p),
    ])
    reseed(transform, seed)
    return transform


def reseed(transform: A.Compose, seed: int) -> None:
    """Give the pipeline and each of its transforms its own random stream, all derived from `seed`.

    albumentations 2.0.8's `Compose(seed=...)` seeds every transform with the *same* seed, so their
    draws are identical: HorizontalFlip(p=0.5) and VerticalFlip(p=0.2) would then always fire
    together. Independent child seeds keep the transforms independent and the run reproducible.
    """
    children = np.random.SeedSequence(seed).spawn(len(transform.transforms) + 1)
    transform.set_random_seed(int(children[0].generate_state(1)[0]))
    for t, child in zip(transform.transforms, children[1:]):
        t.set_random_seed(int(child.generate_state(1)[0]))


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) photos to the ImageNet-normalised float batch the models take.

    Done on the batch, on the training device, rather than per sample: the loader moves uint8.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([epoch_seed, index]).generate_state(1)[0])


class AugmentationSeeds(torch.utils.data.Sampler):
    """Wraps a sampler to yield `(index, seed)` pairs, the seed a function of (epoch seed, index) alone.

    albumentations keeps its random state in the transform, and each DataLoader worker holds its own
    copy, so without this the draws would depend on the number of workers (and all workers would start
    from the same state). Seeding each sample makes them the same with 0, 2 or 8 workers, persistent or not.
    """

    def __init__(self, sampler):
        self.sampler, self.epoch_seed = sampler, 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return ((index, sample_seed(self.epoch_seed, index)) for index in self.sampler)
