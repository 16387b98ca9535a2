"""`petseg export`: ONNX models that give PyTorch's logits, and `petseg predict` with them, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from petseg.data.decode import decode_image
from petseg.inference.onnx_export import PARITY_TOLERANCE
from petseg.inference.onnx_model import load_onnx
from petseg.inference.photos import predict_photos
from petseg.inference.settings import Settings
from petseg.models.build import build_model, normalize
from petseg.models.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import REPO

ARCHS = {"unet": {"base_channels": 4}, "resnet34_unet": {"decoder_channels": 8}}
SETTINGS = {"unet": (0.5, True), "resnet34_unet": (0.4, False)}  # threshold, TTA: each must travel in the file
PHOTOS = ["Abyssinian_1.jpg", "Abyssinian_5.jpg", "Bengal_10.jpg", "american_bulldog_10.jpg"]
# What `petseg predict` with an ONNX model may import: none of training's libraries
BLOCKED = ("torch", "torchvision", "albumentations", "cv2", "matplotlib", "yaml", "optuna", "pandas", "dvc",
           "pydantic")
TORCH_FREE_RUN = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ModuleNotFoundError('blocked: ' + name, name=name)  # as if not installed
sys.meta_path.insert(0, Block())
from petseg.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r})
assert not loaded, loaded
sys.exit(code)
"""


def calibrated(name: str, photos: np.ndarray) -> torch.nn.Module:
    """A randomly initialised model whose batch-norm statistics come from real photos: logits of a trained
    model's scale, around zero, so that masks have edges and thresholds matter."""
    torch.manual_seed(0)
    model = build_model(name, ARCHS[name])
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the batches below
    with torch.no_grad():
        model.train()(normalize(torch.from_numpy(photos).permute(0, 3, 1, 2)))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tiny_raw, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Both models as checkpoints (64 px) and as ONNX files made by `petseg export`: {name: (pt, onnx)}."""
    out = tmp_path_factory.mktemp("export")
    photos = np.stack([np.asarray(decode_image(tiny_raw / "images" / p).resize((64, 64))) for p in PHOTOS])
    paths = {}
    for name in ARCHS:
        threshold, tta = SETTINGS[name]  # the project's evaluate settings, which export writes into the ONNX model
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["evaluate"].update(threshold=threshold, tta_hflip=tta)
        (out / f"{name}.yaml").write_text(yaml.safe_dump(params))
        save_checkpoint(out / f"{name}.pt", calibrated(name, photos).state_dict(), name, ARCHS[name], 64)
        paths[name] = (out / f"{name}.pt", out / "onnx" / f"{name}.onnx")
        result = subprocess.run([sys.executable, "-m", "petseg", "--params", str(out / f"{name}.yaml"), "export",
                                 "--checkpoint", str(paths[name][0]), "--out", str(paths[name][1]),
                                 "--photos", str(tiny_raw / "images")], cwd=out, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""  # the product is the files; the summary is on stderr
        assert "largest |logit difference| from PyTorch" in result.stderr
    return paths


def real_photos(raw: Path, height: int, width: int) -> np.ndarray:
    return np.stack([np.asarray(decode_image(raw / "images" / p).resize((width, height), Image.Resampling.BILINEAR))
                     for p in PHOTOS])


@pytest.mark.parametrize("name", ARCHS)
def test_onnx_logits_match_pytorch_on_real_photos_of_several_sizes(name, exported, tiny_raw):
    model, _ = load_checkpoint(exported[name][0])
    session, meta = load_onnx(exported[name][1])
    assert (meta["model"], meta["arch"], meta["image_size"]) == (name, ARCHS[name], 64)
    assert (meta["threshold"], meta["tta_hflip"]) == SETTINGS[name]
    found = {}
    for height, width in [(64, 64), (64, 256), (160, 96), (32, 32)]:
        batch = real_photos(tiny_raw, height, width)
        for images in (batch, batch[:1]):  # the batch is dynamic too
            with torch.no_grad():
                expected = model(normalize(torch.from_numpy(images).permute(0, 3, 1, 2))).numpy()
            logits = session.logits(images)
            assert logits.shape == (len(images), 1, height, width)
            found[f"{height}x{width}"] = diff = float(np.abs(logits - expected).max())
            assert diff <= PARITY_TOLERANCE, (height, width, diff)
    assert np.abs(expected).max() > 0.1  # not a trivially flat output
    print(name, found)


def make_photos(raw: Path, folder: Path) -> list[Path]:
    """Real photos of the sample, and a wide (about 5:1), a tall and a small crop of one."""
    folder.mkdir()
    for name in PHOTOS:
        (folder / name).write_bytes((raw / "images" / name).read_bytes())
    photo = decode_image(raw / "images" / PHOTOS[0])
    photo.crop((0, 0, photo.width, photo.height // 3)).resize((photo.width * 2, photo.height // 3)).save(folder / "wide.png")
    photo.crop((0, 0, photo.width // 3, photo.height)).save(folder / "tall.png")
    photo.resize((50, 37)).save(folder / "small.webp")
    return sorted(folder.iterdir())


@pytest.mark.parametrize("name", ARCHS)
def test_predict_with_onnx_gives_the_checkpoints_masks_without_torch(name, exported, tiny_raw, tmp_path):
    photos = make_photos(tiny_raw, tmp_path / "photos")
    result = subprocess.run([sys.executable, "-c", TORCH_FREE_RUN, "predict", "photos", "--model",
                             str(exported[name][1]), "--out", "onnx", "--batch-size", "3"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"wrote masks and overlays of {len(photos)} photos" in result.stderr
    model, meta = load_checkpoint(exported[name][0])
    # the checkpoint in fp32, as the ONNX model computes (on a CPU with native bf16, `petseg predict` with a
    # checkpoint autocasts to bf16, and edge pixels differ: docs/models.md)
    threshold, tta = SETTINGS[name]
    predict_photos(model, meta["image_size"], photos, tmp_path / "pt", Settings(threshold, tta, 3))
    written = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "pt").iterdir()) and len(written) == 2 * len(photos)
    pet_share = []
    for photo in photos:
        mask = f"{photo.stem}_mask.png"
        onnx, pt = (np.asarray(Image.open(tmp_path / kind / mask)) for kind in ("onnx", "pt"))
        assert onnx.shape == pt.shape == Image.open(photo).size[::-1]
        # Probabilities agree to ~1e-6, so a pixel can flip only where the upscaled probability lies that
        # close to the threshold: allow 1 pixel in 10,000 (none differ on these photos)
        assert (onnx != pt).sum() <= pt.size // 10_000, (mask, int((onnx != pt).sum()))
        pet_share.append((pt > 0).mean())
    assert sum(0 < share < 1 for share in pet_share) >= 3, pet_share  # masks with edges, not all or nothing


def petseg(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "petseg", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_bad_model_files_are_one_line(exported, tmp_path):
    import onnx
    from onnx import TensorProto, helper
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp_path / "other.onnx")
    Image.new("RGB", (40, 30)).save(tmp_path / "cat.png")
    for model, message in [(garbage, "not an ONNX model onnxruntime can load"),
                           (tmp_path / "other.onnx", "no 'petseg' metadata_props: not made by petseg export"),
                           (tmp_path / "missing.onnx", "no such ONNX model file")]:
        result = petseg("predict", "cat.png", "--model", model, "--out", "out", cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(f"petseg predict: error: {model}: {message}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = subprocess.run([sys.executable, "-c", TORCH_FREE_RUN, "predict", "cat.png", "--model",
                             str(exported["unet"][0]), "--out", "out"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1  # an install without torch: a checkpoint is refused in one line
    assert result.stderr.strip() == (f"petseg predict: error: {exported['unet'][0]}: a PyTorch checkpoint needs "
                                     "torch (pip install petseg); an ONNX model made by petseg export needs only onnxruntime")
    result = petseg("export", "--checkpoint", exported["unet"][1], "--out", tmp_path / "x.onnx", cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert f"{exported['unet'][1]}: not a petseg checkpoint" in result.stderr
    assert not (tmp_path / "x.onnx").exists()
    result = petseg("export", "--checkpoint", exported["unet"][0], "--out", "a.onnx", "b.onnx", cwd=tmp_path)
    assert result.returncode == 1 and "--out: 2 paths for 1 checkpoints" in result.stderr


def test_model_card_from_the_metrics(tmp_path):
    from petseg.core.config import load_params
    from petseg.inference.card import MEASURED, model_card
    from petseg.inference.settings import from_params
    params = load_params(REPO / "params.yaml")
    scores = json.loads((REPO / "metrics" / "evaluate.json").read_text())["unet"]
    trained = json.loads((REPO / "metrics" / "train_unet.json").read_text())
    counts = json.loads((REPO / "metrics" / "preprocess.json").read_text())
    meta = {"model": "unet", "arch": {"base_channels": 16}, "image_size": 96, "precision": "bf16"}
    card = model_card("unet", meta, from_params(params), params, counts, trained, scores, {"96x96": 1.7e-5},
                      "4 photos of x", 1e-3)
    assert card.startswith("# UNet: model card\n")
    assert f"{counts['train']} train, {counts['valid']} validation" in card
    assert f"| Dice (pixels of all test photos pooled) | {scores['dice']:.4f} |" in card
    assert f"| 95% interval (bootstrap over photos, 2000 resamples) | {scores['dice_ci_low']:.4f} to " in card
    assert f"| Dice, cats | {scores['dice_cat']:.4f} |" in card and f"| Dice, dogs | {scores['dice_dog']:.4f} |" in card
    assert f"{trained['epochs']} epochs" in card and f"batch {params.train.batch_size}" in card
    assert "several pets" in card and "beyond 2:1" in card and "trained with bf16 autocast" in card
    assert "pet where its sigmoid, averaged with that of its mirror image (TTA), is over 0.5" in card
    assert card.index(MEASURED) > card.index("## Known limits")  # the machine-dependent part is last
    assert "1.7e-05 at 96x96 px" in card and " ms " not in card  # a time would change the card on every run
    assert "Progressive resizing" not in card  # the shipped params train every epoch at the full size
    params = params.model_copy(update={"unet": params.unet.model_copy(update={"progressive_size": 64})})
    card = model_card("unet", meta, from_params(params), params, counts, dict(trained, epochs=23), scores,
                      {"96x96": 1.7e-5}, "4 photos of x", 1e-3)
    assert "- Progressive resizing: the first 11 epochs on 64 px crops\n" in card  # 23 x 0.5, rounded down
