"""Dice, IoU, pixel accuracy and the loss against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from petseg.core.metrics import (
    Confusion,
    confusion_per_image,
    dice_score,
    iou_score,
    pixel_accuracy,
    summarize,
)
from petseg.training.losses import DiceBCELoss, soft_dice_loss


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_confusion_counts_per_image():
    pred = masks([1, 1, 0, 0, 1], [0, 0, 0, 0, 0])
    true = masks([1, 0, 1, 0, 1], [0, 0, 0, 1, 1])
    counts = confusion_per_image(pred, true)
    assert counts.tolist() == [[2, 1, 1, 1], [0, 0, 2, 3]]  # tp, fp, fn, tn


def test_scores_by_hand():
    c = Confusion(tp=2, fp=1, fn=1, tn=1)
    assert dice_score(c) == pytest.approx(4 / 6)
    assert iou_score(c) == pytest.approx(2 / 4)
    assert pixel_accuracy(c) == pytest.approx(3 / 5)


def test_empty_masks():
    assert dice_score(Confusion(tn=10)) == 1.0  # nothing to find, nothing found
    assert iou_score(Confusion(tn=10)) == 1.0
    assert dice_score(Confusion(fn=3, tn=7)) == 0.0  # pet missed entirely
    assert dice_score(Confusion(fp=3, tn=7)) == 0.0  # pet hallucinated


def test_dataset_dice_sums_pixels_while_mean_image_dice_averages_images():
    pred = masks([1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0])
    true = masks([1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0])
    result = summarize(confusion_per_image(pred, true))
    # image 1: tp 4, fn 4 -> Dice 8/12; image 2: empty vs empty -> 1. Summed: tp 4, fn 4, tn 8.
    assert result["dice"] == pytest.approx(8 / 12)
    assert result["mean_image_dice"] == pytest.approx((8 / 12 + 1) / 2)
    assert result["iou"] == pytest.approx(4 / 8)
    assert result["pixel_accuracy"] == pytest.approx(12 / 16)
    assert result["n_images"] == 2


def test_loss_by_hand():
    logits = torch.zeros(1, 1, 2, 2)  # sigmoid 0.5 everywhere
    target = torch.ones(1, 1, 2, 2)
    # soft Dice: 1 - (2 * 2 + 1) / (2 + 4 + 1) = 2/7; BCE: ln 2
    assert soft_dice_loss(logits, target).item() == pytest.approx(2 / 7)
    loss = DiceBCELoss(dice_weight=0.3, bce_weight=0.7)(logits, target)
    assert loss.item() == pytest.approx(0.3 * 2 / 7 + 0.7 * math.log(2), rel=1e-6)


def test_loss_is_near_zero_for_confident_correct_logits():
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    logits = (target * 2 - 1) * 20
    assert DiceBCELoss()(logits, target).item() < 1e-3


def test_bootstrap_interval_of_the_dice():
    from petseg.inference.scoring import bootstrap_dice
    same = torch.tensor([[3, 1, 1, 5]] * 10)  # every image has Dice 6/8
    assert bootstrap_dice(same, 500, 0.95, seed=0) == pytest.approx((0.75, 0.75))
    mixed = torch.tensor([[9, 0, 0, 1], [0, 5, 5, 0], [4, 1, 1, 4], [7, 2, 0, 1]] * 5)
    low, high = bootstrap_dice(mixed, 2000, 0.95, seed=0)
    point = dice_score(Confusion(tp=100, fp=40, fn=30, tn=30))
    assert low < point < high and 0 < low and high < 1
    assert bootstrap_dice(mixed, 2000, 0.95, seed=0) == (low, high)  # seeded: the same interval every run
    assert bootstrap_dice(mixed, 2000, 0.5, seed=0)[1] - bootstrap_dice(mixed, 2000, 0.5, seed=0)[0] < high - low


class _Ramp(torch.nn.Module):
    """Logits that rise from left to right whatever the photo: the mirrored pass sees them fall."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x):
        return torch.linspace(-3, 3, x.shape[-1]).expand(x.shape[0], 1, x.shape[-2], -1) + self.anchor


class _Echo(torch.nn.Module):
    """Logits that follow the photo's first channel, so they mirror with it."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x[:, :1] + self.anchor


def test_hflip_tta_averages_a_photo_and_its_mirror():
    from petseg.inference.predictor import predict_probabilities
    photos = torch.randint(0, 256, (3, 4, 6, 3), dtype=torch.uint8).numpy()
    plain, _ = predict_probabilities(_Ramp(), photos, batch_size=2)
    ramp = torch.sigmoid(torch.linspace(-3, 3, 6))
    assert torch.allclose(plain, ramp.expand(3, 4, 6))
    mirrored, _ = predict_probabilities(_Ramp(), photos, batch_size=2, tta_hflip=True)
    # sigmoid(a) + sigmoid(-a) = 1: a ramp averaged with its mirror is 0.5 everywhere
    assert torch.allclose(mirrored, torch.full((3, 4, 6), 0.5))
    # a model that mirrors with the photo predicts the same with and without the mirrored pass
    echo, _ = predict_probabilities(_Echo(), photos, batch_size=2)
    echo_tta, _ = predict_probabilities(_Echo(), photos, batch_size=2, tta_hflip=True)
    assert torch.allclose(echo, echo_tta) and not torch.allclose(echo, echo.flip(-1))


def test_dice_per_species_and_breed_from_known_counts(tmp_path):
    from petseg.data.breeds import pet_breeds
    from petseg.inference.scoring import breed_table, dice_by, image_table
    (tmp_path / "list.txt").write_text("#Image CLASS-ID SPECIES BREED ID\nAbyssinian_1 1 1 1\nAbyssinian_2 1 1 1\n"
                                       "Bengal_7 6 1 2\nbeagle_3 11 2 3\n")
    stems = ["Abyssinian_1", "Abyssinian_2", "Bengal_7", "beagle_3", "pug_9"]  # pug_9: not in list.txt
    counts = torch.tensor([[8, 2, 0, 90], [2, 0, 2, 96], [5, 5, 5, 85], [0, 0, 0, 100], [1, 3, 0, 96]])
    pets = pet_breeds(stems, tmp_path / "list.txt")
    assert pets == {"Abyssinian_1": ("Abyssinian", "cat"), "Abyssinian_2": ("Abyssinian", "cat"),
                    "Bengal_7": ("Bengal", "cat"), "beagle_3": ("beagle", "dog"), "pug_9": ("pug", "dog")}
    images = image_table(stems, counts, torch.tensor([0.5, 0.25, 1.0, 1.0, 0.0]), pets)
    assert list(images.columns) == ["stem", "tp", "fp", "fn", "tn", "dice", "boundary_iou", "breed", "species"]
    assert images["dice"].tolist() == [16 / 18, 4 / 6, 10 / 20, 1.0, 2 / 5]  # beagle_3: empty both ways, 1
    species = dice_by(images, "species").to_dict("index")
    # cats: tp 15, fp 7, fn 7 -> 30 / 44; dogs: tp 1, fp 3, fn 0 -> 2 / 5
    assert species == {"cat": {"dice": 30 / 44, "n_images": 3}, "dog": {"dice": 2 / 5, "n_images": 2}}
    assert breed_table(images).to_dict("records") == [
        {"breed": "Abyssinian", "species": "cat", "dice": pytest.approx(20 / 24), "n_images": 2},
        {"breed": "Bengal", "species": "cat", "dice": pytest.approx(10 / 20), "n_images": 1},
        {"breed": "beagle", "species": "dog", "dice": 1.0, "n_images": 1},
        {"breed": "pug", "species": "dog", "dice": pytest.approx(2 / 5), "n_images": 1}]


def test_boundary_iou_by_hand():
    """A 6x6 square in a 10x10 image, width 1: its inner boundary is the 20 pixels of its outline."""
    from petseg.core.metrics import boundary_iou, inner_boundary
    truth = torch.zeros(1, 10, 10, dtype=torch.bool)
    truth[0, 2:8, 2:8] = True
    edge = inner_boundary(truth, 1)
    assert int(edge.sum()) == 36 - 16 and not edge[0, 3:7, 3:7].any()
    assert boundary_iou(truth, truth, 1).tolist() == [1.0]
    shifted = torch.zeros_like(truth)
    shifted[0, 2:8, 3:9] = True  # one column to the right: outlines share the top and bottom rows' 5 pixels each
    assert boundary_iou(shifted, truth, 1).item() == pytest.approx(10 / 30)
    empty = torch.zeros_like(truth)
    assert boundary_iou(empty, empty, 1).tolist() == [1.0] and boundary_iou(empty, truth, 1).tolist() == [0.0]


def test_the_image_edge_is_background_for_the_boundary():
    """A mask that fills the image has its outline along the image's edge, as in Cheng et al.'s code."""
    from petseg.core.metrics import inner_boundary
    full = torch.ones(1, 5, 5, dtype=torch.bool)
    assert int(inner_boundary(full, 1).sum()) == 25 - 9


def test_mean_batch_dice_averages_each_batchs_pooled_dice():
    from petseg.core.metrics import mean_batch_dice
    counts = torch.tensor([[1, 0, 0, 3], [0, 1, 1, 2], [2, 2, 0, 0]])  # tp, fp, fn, tn per image
    # batches of 2: (tp 1, fp 1, fn 1) -> 2/4; (tp 2, fp 2) -> 4/6
    assert mean_batch_dice(counts, 2) == pytest.approx((2 / 4 + 4 / 6) / 2)
    assert mean_batch_dice(counts, 3) == pytest.approx(2 * 3 / (2 * 3 + 3 + 1))


def test_boundary_width_is_two_percent_of_the_diagonal():
    from petseg.core.metrics import boundary_width
    assert boundary_width(96, 96) == 3 and boundary_width(256, 256) == 7 and boundary_width(10, 10) == 1
