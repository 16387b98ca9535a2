"""The training dataset: (photo, mask) pairs through the augmentation, each sample seeded on its own."""

from __future__ import annotations

import numpy as np
import torch

from petseg.data.arrays import Split
from petseg.training.augment import reseed


class SegmentationDataset(torch.utils.data.Dataset):
    """(image, mask) uint8 tensors (3,H,W) and (1,H,W), through an optional albumentations transform.

    Indexed by `i`, or by `(i, seed, size)` (see `AugmentationSeeds`): the transform is then reseeded first,
    so a sample's augmentation depends on its seed alone, not on the worker or the samples before it;
    `size` picks the transform of `resized` that crops to that side (None: `transform`).
    """

    def __init__(self, split: Split, transform=None, resized: dict | None = None):
        self.split, self.transform, self.resized = split, transform, resized or {}

    def __len__(self) -> int:
        return len(self.split.images)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.split.images[index]), np.asarray(self.split.masks[index])

    def __getitem__(self, key: int | tuple[int, int, int | None]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed, size = key if isinstance(key, tuple) else (key, None, None)
        image, mask = self.load(index)
        transform = self.transform if size is None else self.resized[size]
        if transform is not None:
            if seed is not None:
                reseed(transform, seed)
            out = transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(mask[None].copy())


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([epoch_seed, index]).generate_state(1)[0])


class AugmentationSeeds(torch.utils.data.Sampler):
    """Wraps a sampler to yield `(index, seed, size)`, the seed a function of (epoch seed, index) alone, the size
    the epoch's crop side (None: the dataset's own). Both travel with the index, so persistent workers see them.

    albumentations keeps its random state in the transform, and each DataLoader worker holds its own
    copy, so without this the draws would depend on the number of workers (and all workers would start
    from the same state). Seeding each sample makes them the same with 0, 2 or 8 workers, persistent or not.
    """

    def __init__(self, sampler):
        self.sampler, self.epoch_seed, self.epoch_size = sampler, 0, None

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return ((index, sample_seed(self.epoch_seed, index), self.epoch_size) for index in self.sampler)

