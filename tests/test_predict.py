"""`petseg predict` on photos that were never in the dataset, and the README results table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from petseg.core.device import Precision
from petseg.inference.settings import Settings
from petseg.models.build import build_model
from petseg.models.checkpoint import save_checkpoint
from petseg.tools.report import END, START, results_table, update_readme
from tests.conftest import REPO


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "unet.pt"
    model = build_model("unet", {"base_channels": 4})
    save_checkpoint(path, model.state_dict(), "unet", {"base_channels": 4}, 64, threshold=0.5, tta_hflip=True)
    return path


def test_predict_writes_masks_at_each_photos_own_size(checkpoint, tmp_path):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {"wide.jpg": (37, 501), "tall.png": (333, 17), "tiny.gif": (5, 3), "nested/square.webp": (64, 64)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(photos / name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 this is not a photo")
    result = subprocess.run([sys.executable, "-m", "petseg", "predict", str(photos), "--model", str(checkpoint),
                             "--out", str(tmp_path / "out"), "--batch-size", "2"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "broken.jpg: not a readable image" in result.stderr
    assert "wrote masks and overlays of 4 photos" in result.stderr
    for name, (h, w) in sizes.items():
        stem = name.split("/")[-1].rsplit(".", 1)[0]
        mask = np.asarray(Image.open(tmp_path / "out" / f"{stem}_mask.png"))
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}, name
        overlay = Image.open(tmp_path / "out" / f"{stem}_overlay.png")
        assert overlay.size == (w, h) and overlay.mode == "RGB"


def test_predict_on_a_missing_path_is_one_line(checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "-m", "petseg", "predict", str(tmp_path / "nope.jpg"), "--model",
                             str(checkpoint), "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == f"petseg predict: error: {tmp_path / 'nope.jpg'}: no such photo or folder"


def test_predict_help_shows_an_example():
    result = subprocess.run([sys.executable, "-m", "petseg", "predict", "--help"], capture_output=True, text=True)
    assert "petseg predict my_cat.jpg photos/ --model models/unet.onnx --out predictions/" in " ".join(result.stdout.split())


def test_results_table_comes_from_the_metrics(tmp_path):
    metrics = {"unet": {"dice": 0.8312, "mean_image_dice": 0.8, "iou": 0.71, "pixel_accuracy": 0.85, "n_images": 149,
                        "parameters": 1942577, "inference_ms_per_image": 6.71}}
    table = results_table({"": metrics})
    # an older JSON without the later keys: blank cells, not an error
    assert table.splitlines()[2] == "| UNet |  |  | 0.8312 |  | 0.8000 |  |  |  |  |  | 0.7100 | 149 |  | 1,942,577 | 6.7 |  |"
    metrics["unet"] |= {"epochs": 22, "train_minutes": 4.55, "dice_ci_low": 0.81, "dice_ci_high": 0.85, "dice_original_resolution": 0.8299,
                        "dice_cat": 0.84, "dice_dog": 0.82751, "reference_dice": 0.83456, "boundary_iou": 0.61,
                        "n_skipped": 2, "trained_on": "AMD EPYC (AVX2), fp32"}
    assert results_table({"": metrics}).splitlines()[2] == (
        "| UNet | 22 | 4.5 | 0.8312 | 0.8100 to 0.8500 | 0.8000 | 0.8346 | 0.6100 | 0.8299 | 0.8400 | 0.8275 | 0.7100 | 149 | 2 "
        "| 1,942,577 | 6.7 | AMD EPYC (AVX2), fp32 |")
    two_runs = results_table({"sample": metrics, "full": metrics}).splitlines()
    assert two_runs[0].startswith("| run | model |") and len(two_runs) == 4
    assert two_runs[2].startswith("| sample | UNet | 22 | 4.5 | 0.8312 |") and two_runs[3].startswith("| full | UNet |")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nrest\n")
    update_readme(readme, table)
    assert readme.read_text() == f"intro\n{START}\n{table}\n{END}\nrest\n"
    assert json.dumps(metrics)  # the table is a pure function of the metrics


class AllPet(torch.nn.Module):
    """Says 'pet' everywhere: its Dice at any resolution follows from the trimap alone."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.full((x.shape[0], 1, *x.shape[2:]), 10.0) + self.w


def test_dice_at_original_resolution_uses_the_unresized_trimaps(tiny_raw):
    from petseg.data.decode import decode_trimap, trimap_to_mask
    from petseg.data.folder import load_folder
    from petseg.inference.scoring import evaluate_model
    split, skipped = load_folder(tiny_raw, 64, "test.txt")
    result, _, _, _ = evaluate_model(AllPet(), split, Settings(0.5, False, 4), FP32, raw_dir=tiny_raw)
    assert skipped == [] and result["n_skipped"] == 0 and result["skipped"] == []
    pet = total = 0
    for stem in split.stems:
        mask = trimap_to_mask(decode_trimap(tiny_raw / "annotations" / "trimaps" / f"{stem}.png"))
        pet, total = pet + int(mask.sum()), total + mask.size
    assert result["dice_original_resolution"] == pytest.approx(2 * pet / (pet + total))
    assert "dice_ci_low" not in result



def test_the_metrics_name_each_photo_that_could_not_be_scored_and_why(tiny_raw, tmp_path):
    from petseg.data.folder import load_folder
    from petseg.inference.scoring import evaluate_model
    copy = tmp_path / "raw"
    shutil.copytree(tiny_raw, copy)
    whole, _ = load_folder(copy, 64, "test.txt")
    broken = whole.stems[0]
    (copy / "images" / f"{broken}.jpg").write_bytes(b"not a photo")
    split, skipped = load_folder(copy, 64, "test.txt")
    result, _, _, _ = evaluate_model(AllPet(), split, Settings(0.5, False, 4), FP32, skipped=skipped)
    assert result["n_images"] == len(whole.stems) - 1 and broken not in split.stems
    assert result["n_skipped"] == 1 and result["skipped"] == [{"stem": broken, "reason": skipped[0]["reason"]}]
    assert f"{broken}.jpg" in skipped[0]["reason"]

def test_dice_per_species_and_breed_of_a_model(tiny_raw):
    from petseg.data.folder import load_folder
    from petseg.inference.scoring import evaluate_model
    split, _ = load_folder(tiny_raw, 64, "test.txt")
    result, per_image, breeds, _ = evaluate_model(AllPet(), split, Settings(0.5, False, 4), FP32, raw_dir=tiny_raw)
    breeds, per_image = breeds.to_dict("records"), per_image.to_dict("records")
    pet = {"cat": 0, "dog": 0}
    for stem, mask in zip(split.stems, split.masks):  # all-pet predictions: Dice = 2 pet / (pet + pixels)
        species = "cat" if stem.startswith("Abyssinian") else "dog"
        pet[species] += int(mask.sum())
    n = {"cat": sum(s.startswith("Abyssinian") for s in split.stems), "dog": 2}
    for species in ("cat", "dog"):
        assert result[f"dice_{species}"] == pytest.approx(2 * pet[species] / (pet[species] + n[species] * 64 * 64))
    assert [(b["breed"], b["species"], b["n_images"]) for b in breeds] == [
        ("Abyssinian", "cat", n["cat"]), ("american_bulldog", "dog", 2)]
    assert breeds[0]["dice"] == result["dice_cat"] and breeds[1]["dice"] == result["dice_dog"]
    assert {(row["stem"], row["breed"], row["species"]) for row in per_image} >= {
        ("Abyssinian_5", "Abyssinian", "cat"), ("american_bulldog_205", "american_bulldog", "dog")}


FP32 = Precision("fp32", "test")


def predict(checkpoint, *args, cwd):
    return subprocess.run([sys.executable, "-m", "petseg", "predict", *map(str, args), "--model", str(checkpoint),
                           "--out", "out"], cwd=cwd, capture_output=True, text=True)


def test_predict_follows_the_exif_orientation_outside_any_project(checkpoint, tiny_raw, tmp_path):
    upright = Image.open(tiny_raw / "images" / "Abyssinian_5.jpg").convert("RGB")
    assert upright.width != upright.height
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone held upright: the stored pixels are turned, the viewer rotates them 90 degrees
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    from PIL import ImageOps
    shown = ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg")).convert("RGB")  # what a viewer shows
    shown.save(tmp_path / "viewer.png")
    result = predict(checkpoint, "phone.jpg", "viewer.png", cwd=tmp_path)  # no params.yaml here
    assert result.returncode == 0, result.stderr
    phone = np.asarray(Image.open(tmp_path / "out" / "phone_mask.png"))
    viewer = np.asarray(Image.open(tmp_path / "out" / "viewer_mask.png"))
    assert phone.shape == (upright.height, upright.width) == viewer.shape
    assert np.array_equal(phone, viewer)
    assert Image.open(tmp_path / "out" / "phone_overlay.png").size == upright.size


def test_one_photo_is_counted_in_the_singular(checkpoint, tiny_raw, tmp_path):
    Image.open(tiny_raw / "images" / "Abyssinian_5.jpg").convert("RGB").save(tmp_path / "cat.jpg")
    result = predict(checkpoint, "cat.jpg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote masks and overlays of 1 photo to out; skipped 0" in result.stderr


def test_photos_of_one_name_never_overwrite_each_other(checkpoint, tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a/pet.jpg", "b/pet.png", "c/dog.jpg", "c/dog.png", "cat.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name)
    result = predict(checkpoint, "a/pet.jpg", "b", "c", "cat.jpg", "c/dog.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote masks and overlays of 5 photos" in result.stderr
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*_mask.png"))
    assert written == ["a/pet_mask.png", "b/pet_mask.png", "cat_mask.png", "dog_jpg_mask.png", "dog_png_mask.png"]


class ShapeRecorder(torch.nn.Module):
    """Remembers the input shapes it was given; predicts pet on the left half."""

    def __init__(self):
        super().__init__()
        self.w, self.shapes = torch.nn.Parameter(torch.zeros(1)), []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        left = (torch.arange(x.shape[-1]) < x.shape[-1] // 2).float() * 20 - 10
        return left.expand(x.shape[0], 1, x.shape[2], -1) + self.w


def test_wide_and_tall_photos_keep_their_aspect(tmp_path):
    from petseg.inference.photos import predict_photos
    sizes = {"wide.png": (1200, 300), "tall.png": (300, 1200), "odd.png": (333, 100), "usual.png": (200, 120)}
    for name, size in sizes.items():
        Image.new("RGB", size, (120, 80, 40)).save(tmp_path / name)
    model = ShapeRecorder()
    photos = [tmp_path / n for n in sizes]
    written, _ = predict_photos(model, 96, photos, tmp_path / "out", Settings(0.5, False, 4))
    # beyond 2:1, shorter side at the training size, the longer in proportion, padded to a multiple of 32;
    # a usual photo is squashed to the training square, as the training photos were
    assert sorted(s[2:] for s in model.shapes) == [(96, 96), (96, 320), (96, 384), (384, 96)]
    assert np.asarray(Image.open(tmp_path / "out" / "usual_mask.png")).shape == (120, 200)
    odd = np.asarray(Image.open(tmp_path / "out" / "odd_mask.png")) > 0
    assert odd.shape == (100, 333)
    assert odd[:, :160].all() and not odd[:, 170:].any()  # the padding is cut off before scaling back


def test_the_reference_protocol_is_the_mean_dice_of_batches_of_16_in_list_order(tiny_raw):
    """All-pet predictions on the tiny test split: each batch's Dice by hand, the batches as test.txt orders them."""
    from petseg.data.folder import load_folder
    from petseg.data.splits import read_split_list
    from petseg.inference.scoring import REFERENCE_BATCH, evaluate_model
    split, _ = load_folder(tiny_raw, 64, "test.txt")
    result, _, _, _ = evaluate_model(AllPet(), split, Settings(0.5, False, 4), FP32, raw_dir=tiny_raw)
    order = [stem for stem in read_split_list(tiny_raw / "annotations" / "test.txt") if stem in split.stems]
    pet = {stem: int(mask.sum()) for stem, mask in zip(split.stems, split.masks)}
    batches = [order[i:i + REFERENCE_BATCH] for i in range(0, len(order), REFERENCE_BATCH)]
    by_hand = [2 * sum(pet[s] for s in b) / (sum(pet[s] for s in b) + len(b) * 64 * 64) for b in batches]
    assert result["reference_dice"] == pytest.approx(sum(by_hand) / len(by_hand))
    assert REFERENCE_BATCH == 16 and len(batches) == 1  # 6 photos: one batch, so it equals the pooled Dice
    assert result["reference_dice"] == pytest.approx(result["dice"])


def test_an_empty_folder_or_an_out_that_is_a_file_is_one_line(checkpoint, tmp_path):
    def run(photos, out):
        return subprocess.run([sys.executable, "-m", "petseg", "predict", str(photos), "--model", str(checkpoint),
                               "--out", str(out)], cwd=tmp_path, capture_output=True, text=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a photo")
    result = run(empty, tmp_path / "out")
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        f"petseg predict: error: {empty}: no photo files (by suffix: .bmp, .gif, ")
    assert not (tmp_path / "out").exists()
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    result = run(empty, taken)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        f"petseg predict: error: --out {taken}: is a file; give a folder for the masks and overlays")
    assert taken.read_text() == "a file"
