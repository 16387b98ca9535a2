"""The prediction grid: which test photos it shows, and the picture itself."""

from __future__ import annotations

import numpy as np
from PIL import Image

from petseg.inference.figures import choose_photos, prediction_grid

BREEDS = {"Abyssinian": "cat", "Bengal": "cat", "beagle": "dog", "pug": "dog"}


def per_image(dice_of) -> list[dict]:
    return [{"stem": f"{breed}_{i}", "breed": breed, "species": species, "dice": str(dice_of(breed, i))}
            for breed, species in BREEDS.items() for i in range(1, 4)]


def test_one_photo_per_breed_then_each_models_worst():
    tables = {"unet": per_image(lambda b, i: 0.9 - 0.1 * i if b == "pug" else 0.95),
              "resnet34_unet": per_image(lambda b, i: {("Bengal", 2): 0.5, ("Bengal", 3): 0.6}.get((b, i), 0.9))}
    rows = choose_photos(tables, n_varied=10, n_worst=2, seed=0)
    varied, worst = rows[:4], rows[4:]
    assert [label for _, label in varied] == ["Abyssinian (cat)", "Bengal (cat)", "beagle (dog)", "pug (dog)"]
    assert all(stem.rsplit("_", 1)[0] == label.split()[0] for stem, label in varied)
    shown = {stem for stem, _ in varied}
    unet_worst = [s for s in ("pug_3", "pug_2", "pug_1") if s not in shown][:2]
    assert worst[:2] == [(stem, f"UNet's worst #{k}\npug (dog)") for k, stem in enumerate(unet_worst, 1)]
    assert worst[2][1].startswith("ResNet34-UNet's worst #1") and len(worst) == 4
    resnet_worst = [s for s in ("Bengal_2", "Bengal_3") if s not in shown][0]  # a row is shown once
    assert worst[2] == (resnet_worst, "ResNet34-UNet's worst #1\nBengal (cat)")
    assert len({stem for stem, _ in rows}) == len(rows)  # no photo twice
    assert choose_photos(tables, 10, 2, seed=0) == rows  # seeded
    assert any(choose_photos(tables, 10, 2, seed=s)[:4] != varied for s in range(1, 6))


def test_photos_whose_truth_has_no_pet_are_not_shown_as_a_models_worst():
    tables = {"unet": per_image(lambda b, i: 0.0 if (b, i) == ("pug", 1) else 0.9 - 0.01 * i)}
    rows = choose_photos(tables, n_varied=0, n_worst=1, seed=0)
    assert rows == [("pug_1", "UNet's worst #1\npug (dog)")]
    rows = choose_photos(tables, n_varied=0, n_worst=1, seed=0, not_worst={"pug_1"})
    assert rows[0][0] != "pug_1" and rows[0][0].endswith("_3")


def test_more_breeds_than_rows_draws_distinct_breeds():
    tables = {"unet": per_image(lambda b, i: 0.9)}
    rows = choose_photos(tables, n_varied=2, n_worst=0, seed=3)
    assert len(rows) == 2 and len({label for _, label in rows}) == 2


def test_the_grid_is_a_readable_png(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    truth = np.zeros((3, 64, 64), np.uint8)
    truth[:, 16:48, 16:48] = 1
    predictions = {"unet": truth.astype(bool), "resnet34_unet": np.zeros((3, 64, 64), bool)}
    prediction_grid(images, truth, predictions, ["Abyssinian (cat)", "beagle (dog)", "UNet's worst #1\npug (dog)"],
                    ["Abyssinian_1", "beagle_2", "pug_3"], tmp_path / "grid.png")
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.width >= 4 * 160 and grid.height >= 3 * 160  # tiles big enough to read
    first = (tmp_path / "grid.png").read_bytes()
    prediction_grid(images, truth, predictions, ["Abyssinian (cat)", "beagle (dog)", "UNet's worst #1\npug (dog)"],
                    ["Abyssinian_1", "beagle_2", "pug_3"], tmp_path / "same.png")
    assert (tmp_path / "same.png").read_bytes() == first  # byte-identical for the same input
