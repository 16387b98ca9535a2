"""Trimaps, decoding by content, splits and the preprocessed arrays, on the shipped sample."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from petseg.data.arrays import load_split
from petseg.data.breeds import pet_breeds
from petseg.data.decode import decode_image, trimap_to_mask
from petseg.data.preprocess import load_pair, official_splits, pair_paths, preprocess
from petseg.data.splits import read_split_list, split_trainval
from petseg.tools.make_sample import stratified_stems
from tests.conftest import TINY_STEMS, TINY_TEST, TINY_TRAINVAL


def test_trimap_to_mask_maps_pet_and_border_to_one():
    trimap = np.array([[1, 2, 3], [2, 2, 1], [3, 3, 2]], np.uint8)
    expected = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], np.uint8)
    mask = trimap_to_mask(trimap)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, expected)


def test_trimap_to_mask_all_background_is_empty():
    assert trimap_to_mask(np.full((4, 5), 2, np.uint8)).sum() == 0


def test_trimap_to_mask_rejects_values_outside_1_2_3():
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        trimap_to_mask(np.array([[1, 0], [255, 2]], np.uint8))


@pytest.mark.parametrize("stem, magic, fmt", [("Abyssinian_5", b"\x89PNG", "PNG"), ("Abyssinian_34", b"GIF8", "GIF")])
def test_quirk_files_decode_by_content_to_rgb(raw_sample, stem, magic, fmt):
    path = raw_sample / "images" / f"{stem}.jpg"
    assert path.read_bytes().startswith(magic)  # really a PNG / GIF behind .jpg
    image = decode_image(path)
    with Image.open(path) as original, Image.open(raw_sample / "annotations" / "trimaps" / f"{stem}.png") as trimap:
        assert original.format == fmt
        assert image.size == original.size == trimap.size
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.shape[2] == 3
    assert 20 < pixels.mean() < 235 and pixels.std() > 10  # a real photo, not a blank conversion


def test_read_split_list_skips_comments(raw_sample):
    stems = read_split_list(raw_sample / "annotations" / "list.txt")
    assert stems[0] == "Abyssinian_100" and all(not s.startswith("#") for s in stems)
    assert "Abyssinian_82" not in read_split_list(raw_sample / "annotations" / "trainval.txt")


def test_split_is_deterministic_disjoint_and_complete():
    stems = [f"cat_{i}" for i in range(100)]
    train, valid = split_trainval(stems, 0.1, seed=42)
    assert (train, valid) == split_trainval(list(reversed(stems)), 0.1, seed=42)  # order of the list is irrelevant
    assert len(valid) == 10 and len(train) == 90
    assert set(train) | set(valid) == set(stems) and not set(train) & set(valid)
    assert split_trainval(stems, 0.1, seed=43)[1] != valid


# Recorded from the reference run; numpy's PCG64 stream is platform independent, so seed 42 must
# give these validation stems on any machine.
EXPECTED_VALID_HEAD = ["Abyssinian_1", "Abyssinian_100", "Abyssinian_119", "British_Shorthair_163", "Egyptian_Mau_11"]


def test_split_of_the_sample_is_the_same_on_every_machine(raw_sample):
    splits = official_splits(raw_sample, 0.1, seed=42)
    assert {k: len(v) for k, v in splits.items()} == {"train": 333, "valid": 37, "test": 296}
    assert splits["valid"][:5] == EXPECTED_VALID_HEAD


def test_preprocess_writes_arrays_manifest_and_binary_masks(tiny_raw, tmp_path):
    counts = preprocess(tiny_raw, tmp_path, image_size=64, valid_fraction=0.1, seed=42)
    assert counts == {"train": 13, "valid": 2, "test": 6, "skipped": 0}
    with open(tmp_path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["stem"] for r in rows if r["split"] == "test"] == sorted(TINY_TEST)
    assert {r["stem"] for r in rows if r["split"] != "test"} == set(TINY_TRAINVAL)
    original = {r["stem"]: (int(r["height"]), int(r["width"])) for r in rows}
    with Image.open(tiny_raw / "images" / "Abyssinian_5.jpg") as im:
        assert original["Abyssinian_5"] == (im.height, im.width)
    test = load_split(tmp_path, "test")
    assert test.images.shape == (6, 64, 64, 3) and test.images.dtype == np.uint8
    assert test.masks.shape == (6, 64, 64) and set(np.unique(test.masks)) <= {0, 1}
    # the mask of a photo is its trimap resized with nearest: compare one by hand
    i = test.stems.index("Abyssinian_201")
    with Image.open(tiny_raw / "annotations" / "trimaps" / "Abyssinian_201.png") as trimap:
        expected = trimap_to_mask(np.asarray(trimap.resize((64, 64), Image.Resampling.NEAREST)))
    np.testing.assert_array_equal(test.masks[i], expected)
    # Abyssinian_34 (a GIF, in no list) has a trimap that is all background: its mask is empty
    image, mask, _ = load_pair(*pair_paths(tiny_raw, "Abyssinian_34"), 64)
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.sum() == 0


def test_preprocess_is_byte_identical_on_rerun(tiny_raw, tmp_path):
    preprocess(tiny_raw, tmp_path / "a", 64, 0.1, 42)
    preprocess(tiny_raw, tmp_path / "b", 64, 0.1, 42)
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_an_image_size_above_every_photo_is_warned_about(tiny_raw, tmp_path, capsys):
    largest = max(max(Image.open(p).size) for p in (tiny_raw / "images").glob("*.jpg"))
    size = 32 * (largest // 32 + 1)
    preprocess(tiny_raw, tmp_path / "big", size, 0.1, seed=42)
    assert f"warning: preprocess.image_size {size} is larger than every photo (longest side at most " \
        in capsys.readouterr().err
    preprocess(tiny_raw, tmp_path / "small", 64, 0.1, seed=42)
    assert "warning" not in capsys.readouterr().err


def test_the_sample_is_stratified_by_breed_with_the_official_split_and_the_quirks(raw_sample):
    annotations = raw_sample / "annotations"
    list_file = annotations / "list.txt"
    for name, per_breed in (("trainval.txt", 10), ("test.txt", 8)):
        breeds = Counter(breed for breed, _ in pet_breeds(read_split_list(annotations / name), list_file).values())
        assert len(breeds) == 37 and set(breeds.values()) == {per_breed}, name
    assert not set(read_split_list(annotations / "trainval.txt")) & set(read_split_list(annotations / "test.txt"))
    listed = set(read_split_list(list_file))
    assert "Abyssinian_82" not in listed and (raw_sample / "images" / "Abyssinian_82.jpg").is_file()
    assert set(TINY_STEMS) <= {p.stem for p in (raw_sample / "images").glob("*.jpg")}


def test_stratified_stems_draws_per_breed_keeps_the_kept_and_follows_the_seed(tiny_raw):
    # tiny_raw: trainval Abyssinian 9, Bengal 3, american_bulldog 4; test Abyssinian 4, american_bulldog 2
    stems = stratified_stems(tiny_raw, trainval_per_breed=2, test_per_breed=1, seed=0, keep=["Abyssinian_82", "Bengal_110"])
    picked = Counter(stem.rsplit("_", 1)[0] for stem in stems)
    assert picked == {"Abyssinian": 3 + 1, "Bengal": 2, "american_bulldog": 2 + 1}  # Abyssinian_82: kept, in no list
    assert "Bengal_110" in stems and "Abyssinian_82" in stems
    assert stems == stratified_stems(tiny_raw, 2, 1, seed=0, keep=["Abyssinian_82", "Bengal_110"])
    draws = {tuple(stratified_stems(tiny_raw, 2, 1, seed=s)) for s in range(5)}
    assert len(draws) > 1
