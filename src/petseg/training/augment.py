"""Augmentation: albumentations 2.0.8, the transforms of the reference, each seeded on its own."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home on import otherwise

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from petseg.core.config import Augment  # noqa: E402

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked while it is busy can
# hang forever. Parallelism comes from the DataLoader workers instead.
cv2.setNumThreads(0)


def train_transform(params: Augment, image_size: int, seed: int) -> A.Compose:
    """The reference's training augmentations, ported from albumentations 1.x to 2.0.8."""
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
