"""Augmentation seeding: samples and epochs differ, the same seed repeats whatever the workers, noise has the 1.x strength."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from petseg.core.config import load_params
from petseg.data.arrays import Split
from petseg.data.decode import load_pair
from petseg.data.splits import pair_paths
from petseg.models.build import normalize
from petseg.training.augment import reseed, train_transform
from petseg.training.dataset import SegmentationDataset
from petseg.training.loop import crop_size, epoch_seed, make_loader, start_epoch
from tests.conftest import REPO

AUGMENT = load_params(REPO / "params.yaml").augment


@pytest.fixture(scope="module")
def same_photo_eight_times(tiny_raw) -> Split:
    image, mask, _ = load_pair(*pair_paths(tiny_raw, "Abyssinian_1"), 64)
    return Split(np.repeat(image[None], 8, axis=0), np.repeat(mask[None], 8, axis=0), ["Abyssinian_1"] * 8)


def epochs(split: Split, seed: int, workers: int, n_epochs: int = 2, persistent: bool = False) -> list[list[bytes]]:
    """The augmented photos of each epoch, in order, as bytes (the loader as training sets it up)."""
    dataset = SegmentationDataset(split, train_transform(AUGMENT, 64, seed))
    loader = make_loader(dataset, batch_size=1, shuffle=False, num_workers=workers, seed=seed, persistent=persistent)
    run = []
    for epoch in range(1, n_epochs + 1):
        start_epoch(loader, seed, epoch)
        run.append([images.numpy().tobytes() for images, _ in loader])
    return run


def test_two_workers_draw_different_augmentations(same_photo_eight_times):
    first_epoch = epochs(same_photo_eight_times, seed=1, workers=2, n_epochs=1)[0]
    assert len(set(first_epoch)) == 8  # 8 copies of one photo, 8 different augmentations


def test_without_per_sample_seeds_the_two_workers_repeat_each_other(same_photo_eight_times):
    # The albumentations 2.0.8 behaviour AugmentationSeeds exists for: sample 0 comes from worker 0,
    # sample 1 from worker 1, and both workers hold a copy of the same generator state.
    dataset = SegmentationDataset(same_photo_eight_times, train_transform(AUGMENT, 64, 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=2)
    first_epoch = [images.numpy().tobytes() for images, _ in loader]
    assert first_epoch[0] == first_epoch[1]


def test_the_draws_do_not_depend_on_the_workers(same_photo_eight_times):
    in_process = epochs(same_photo_eight_times, seed=7, workers=0, n_epochs=3)
    assert epochs(same_photo_eight_times, seed=7, workers=2, n_epochs=3) == in_process
    assert epochs(same_photo_eight_times, seed=7, workers=2, n_epochs=3, persistent=True) == in_process


def shuffled_epochs(workers: int, persistent: bool, n_epochs: int = 3) -> list[list[int]]:
    """The order a shuffling loader visits 12 samples (each its own index) in, epoch by epoch."""
    loader = make_loader(torch.utils.data.TensorDataset(torch.arange(12)), batch_size=4, shuffle=True,
                         num_workers=workers, seed=5, persistent=persistent)
    run = []
    for epoch in range(1, n_epochs + 1):
        start_epoch(loader, 5, epoch)
        run.append([int(i) for (batch,) in loader for i in batch])
    return run


def test_the_shuffle_does_not_depend_on_the_workers():
    in_process = shuffled_epochs(workers=0, persistent=False)
    for epoch, order in enumerate(in_process, start=1):
        # one generator seeded with the epoch's seed, one int64 spent (the workers' base seed a DataLoader
        # draws from a shared generator), then the permutation: the order the committed runs trained in
        generator = torch.Generator().manual_seed(epoch_seed(5, epoch))
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        assert order == torch.randperm(12, generator=generator).tolist()
    assert len({tuple(order) for order in in_process}) == 3
    assert shuffled_epochs(workers=2, persistent=False) == in_process
    assert shuffled_epochs(workers=2, persistent=True) == in_process  # a persistent loader draws no base seed


@pytest.mark.parametrize("workers", [0, 2])
def test_epochs_differ_and_the_same_seed_repeats_the_run(same_photo_eight_times, workers):
    run = epochs(same_photo_eight_times, seed=7, workers=workers)
    assert not set(run[0]) & set(run[1])  # epoch 2 draws new augmentations
    assert epochs(same_photo_eight_times, seed=7, workers=workers) == run  # same seed, same run
    assert epochs(same_photo_eight_times, seed=8, workers=workers)[0] != run[0]


def progressive_epochs(split: Split, workers: int, persistent: bool) -> list[tuple[set, list[bytes]]]:
    """Three epochs of a loader as progressive resizing drives it: 32 px crops, then 32, then the full 64."""
    dataset = SegmentationDataset(split, train_transform(AUGMENT, 64, 3), {32: train_transform(AUGMENT, 32, 3)})
    loader = make_loader(dataset, batch_size=4, shuffle=False, num_workers=workers, seed=3, persistent=persistent)
    run = []
    for epoch, size in ((1, 32), (2, 32), (3, None)):
        start_epoch(loader, 3, epoch, size)
        batches = list(loader)
        shapes = {(tuple(images.shape[1:]), tuple(masks.shape[1:])) for images, masks in batches}
        run.append((shapes, [images.numpy().tobytes() for images, _ in batches]))
    return run


def test_progressive_epochs_crop_to_their_size_whatever_the_workers(same_photo_eight_times):
    in_process = progressive_epochs(same_photo_eight_times, workers=0, persistent=False)
    assert [shapes for shapes, _ in in_process] == [{((3, 32, 32), (1, 32, 32))}] * 2 + [{((3, 64, 64), (1, 64, 64))}]
    assert len(set(in_process[0][1]) | set(in_process[1][1])) == 4  # two epochs of 32 px, each its own draws
    # persistent workers hold their own copy of the dataset: the size reaches them with each index
    assert progressive_epochs(same_photo_eight_times, workers=2, persistent=True) == in_process


@pytest.mark.parametrize("epochs, size, fraction, small_epochs", [
    (10, 96, 0.5, 5), (9, 96, 0.5, 4), (18, 96, 0.5, 9), (3, 64, 0.0, 0), (3, 64, 1.0, 3), (1, 64, 0.5, 0),
    (10, None, 0.5, 0)])
def test_progressive_resizing_trains_the_first_share_of_epochs_small(epochs, size, fraction, small_epochs):
    params = load_params(REPO / "params.yaml").train.model_copy(
        update={"progressive_size": size, "progressive_fraction": fraction})
    sizes = [crop_size(epoch, epochs, params) for epoch in range(1, epochs + 1)]
    assert sizes == [size] * small_epochs + [None] * (epochs - small_epochs)


def test_mask_follows_the_photo():
    """petseg's transform moves photo and mask together: on a photo that is white exactly where its mask is,
    the augmented mask is still where the augmented photo is white (but for interpolated edge pixels)."""
    rng = np.random.default_rng(0)
    mask = np.kron(rng.integers(0, 2, (4, 4)), np.ones((16, 16), np.uint8)).astype(np.uint8)  # 64x64, 16 px blocks
    image = np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8)
    geometric_only = AUGMENT.model_copy(update={"color_jitter_p": 0, "rgb_shift_p": 0, "noise_p": 0, "hflip_p": 0.5,
                                                "affine_p": 1.0})
    dataset = SegmentationDataset(Split(image[None].repeat(4, 0), mask[None].repeat(4, 0), ["a", "b", "c", "d"]),
                                  train_transform(geometric_only, 64, 0))
    moved = 0
    for index in range(4):
        photo, target = dataset[(index, 100 + index, None)]
        white, pet = photo[0].numpy() > 127, target[0].numpy() > 0
        assert (white == pet).mean() > 0.95  # a photo moved without its mask agrees on about half
        moved += (pet != mask.astype(bool)).mean() > 0.05  # the transform did move things
    assert moved >= 3


def test_gaussian_noise_has_the_albumentations_1x_default_strength():
    noise = next(t for t in train_transform(AUGMENT, 64, 0).transforms if isinstance(t, A.GaussNoise))
    noise = A.Compose([A.GaussNoise(std_range=noise.std_range, p=1.0)], seed=0)
    gray = np.full((256, 256, 3), 128, np.uint8)
    stds = [noise(image=gray)["image"].astype(np.float32).std() for _ in range(20)]
    # 1.x: var_limit=(10, 50) in 0..255 units, so std between sqrt(10) = 3.2 and sqrt(50) = 7.1
    assert 3.0 < min(stds) and max(stds) < 7.6


def test_normalize_uses_imagenet_statistics():
    images = torch.tensor([[[[0]], [[255]], [[124]]]], dtype=torch.uint8)  # one 1x1 photo
    out = normalize(images).flatten().tolist()
    expected = [(0 - 0.485) / 0.229, (1 - 0.456) / 0.224, (124 / 255 - 0.406) / 0.225]
    assert out == pytest.approx(expected, rel=1e-5)


def flips_fired(transform: A.Compose, image: np.ndarray, n: int) -> set[tuple[bool, bool]]:
    fired = set()
    for _ in range(n):
        out = transform(image=image)["image"]
        fired.add((out[0, 0] in (image[0, -1], image[-1, -1]), out[0, 0] in (image[-1, 0], image[-1, -1])))
    return fired


def test_transforms_draw_independently_of_each_other():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    flips = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    # albumentations 2.0.8 seeds every transform with the Compose's seed: the flips always agree
    assert flips_fired(A.Compose(flips, seed=3), image, 64) == {(False, False), (True, True)}
    transform = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    reseed(transform, 3)
    assert flips_fired(transform, image, 64) == {(False, False), (True, True), (True, False), (False, True)}
