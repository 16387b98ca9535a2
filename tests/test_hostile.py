"""Hostile and broken input, crafted here: tiny files that declare something huge, bombs, links out of a data
folder, outputs onto inputs, params that would crash a stage later. Each ends in a bounded amount of memory,
one line (or a skipped file listed), and nothing read, written or deleted outside what was given."""

from __future__ import annotations

import json
import os
import resource  # noqa: F401 (the probes' subprocesses use it)
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from petseg.core.config import load_params
from petseg.core.errors import ParamError, PetsegError
from petseg.data.decode import BadFile, decode_image, load_pair
from tests.conftest import REPO

# petseg under an address-space limit: a probe that tried to allocate what the input declares fails with
# MemoryError (a traceback) instead of taking the machine down, so the exit code and the line tell
LIMITED = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
           "from petseg.cli import main; sys.exit(main(sys.argv[1:]))")


def petseg(*args, cwd=REPO, limit_gb: float | None = None) -> subprocess.CompletedProcess:
    code = ["-m", "petseg"] if limit_gb is None else ["-c", LIMITED.format(limit=int(limit_gb * 2**30))]
    env = os.environ | {"NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *code, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env)


def one_line(result, code: int = 1) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds one compressed row: a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * min(width, 1000)))) + chunk(b"IEND", b""))


def onnx_model(path: Path, meta, graph: str = "ok") -> Path:
    """A tiny ONNX graph with petseg's input and output names: logits = mean of the channels (or a broken
    variant), `meta` as its petseg metadata."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", "h", "w", 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[3], keepdims=1),
             helper.make_node("Transpose", ["m"], ["t"], perm=[0, 3, 1, 2])]
    if graph == "ok":
        nodes.append(helper.make_node("Identity", ["t"], ["logits"]))
    elif graph == "wrong shape":
        nodes.append(helper.make_node("ReduceMean", ["t"], ["logits"], axes=[2, 3], keepdims=1))
    elif graph == "memory":  # asks for 160 GB at run time
        size = helper.make_tensor("s", TensorProto.INT64, [1], [40_000_000_000])
        nodes += [helper.make_node("Constant", [], ["size"], value=size),
                  helper.make_node("ConstantOfShape", ["size"], ["big"]),
                  helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
                  helper.make_node("Add", ["t", "total"], ["logits"])]
    elif graph == "fails":  # a reshape no input fits: onnxruntime fails at run time
        shape = helper.make_tensor("s", TensorProto.INT64, [2], [7, -1])
        nodes += [helper.make_node("Constant", [], ["shape"], value=shape),
                  helper.make_node("Reshape", ["t", "shape"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"petseg": meta if isinstance(meta, str) else json.dumps(meta)})
    onnx.save(model, path)
    return path


META = {"model": "unet", "image_size": 64, "threshold": 0.5, "tta_hflip": False}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return onnx_model(tmp_path_factory.mktemp("onnx") / "tiny.onnx", META)


def photo(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
    return path


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- photos: tiny files that declare something huge ------------------------------------------------------------

def test_a_1x5000_line_is_skipped_by_predict_in_bounded_memory(model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (1, 5000), "gray").save(photos / "line.png")  # about 100 bytes
    photo(photos / "cat.png")
    result = petseg("predict", photos, "--model", model, "--out", tmp_path / "out", limit_gb=1)
    assert result.returncode == 0, result.stderr
    assert f"skipped {photos / 'line.png'}: 1x5000 px is more elongated than 32:1, the most predict takes" \
        in result.stderr
    assert sorted(files(tmp_path / "out")) == ["cat_mask.png", "cat_overlay.png"]


@pytest.mark.parametrize("where", ["predict", "evaluate --folder"])
def test_a_decompression_bomb_is_a_skipped_file_not_a_traceback(model, tmp_path, where):
    bomb = png_header(50_000, 50_000)
    assert len(bomb) < 200
    if where == "predict":
        (tmp_path / "photos").mkdir()
        (tmp_path / "photos" / "bomb.png").write_bytes(bomb)
        photo(tmp_path / "photos" / "cat.png")
        result = petseg("predict", tmp_path / "photos", "--model", model, "--out", tmp_path / "out", limit_gb=1)
        assert result.returncode == 0, result.stderr
        assert f"skipped {tmp_path / 'photos' / 'bomb.png'}: declares over 200000000 px" in result.stderr
        return
    from petseg.data.folder import load_folder
    folder = tmp_path / "folder"
    for stem, data in (("bomb", bomb), ("cat", None)):
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        if data is None:
            photo(folder / "images" / f"{stem}.jpg")
        else:
            (folder / "images" / f"{stem}.jpg").write_bytes(data)
        Image.fromarray(np.full((30, 40), 1, np.uint8)).save(folder / "annotations" / "trimaps" / f"{stem}.png")
    split, skipped = load_folder(folder, 64)
    assert split.stems == ["cat"] and len(skipped) == 1 and "declares over 200000000 px" in skipped[0]["reason"]


def test_a_bomb_trimap_is_refused_from_its_header(tmp_path):
    image, trimap = photo(tmp_path / "a.jpg"), tmp_path / "a.png"
    trimap.write_bytes(png_header(40_000, 30_000))  # 1.2 GP, the photo's aspect: never decoded
    message = r"a\.png: declares over 20000 px \(a decompression bomb\?\); petseg takes a trimap of at most 20000 px"
    with pytest.raises(BadFile, match=message):
        load_pair(image, trimap, 32, max_pixels=20_000)


def test_the_pixel_limit_is_the_same_whatever_was_opened_before(tmp_path):
    small, large = photo(tmp_path / "small.png", (40, 30)), photo(tmp_path / "large.png", (150, 100))
    before = Image.MAX_IMAGE_PIXELS
    for order in ((small, large), (large, small)):
        for path in order:
            if path == large:
                with pytest.raises(BadFile, match="150x100 px is over the 10000 px limit for a photo"):
                    decode_image(path, max_pixels=10_000)
            else:
                assert decode_image(path, max_pixels=10_000).size == (40, 30)
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's own setting is left as it was


@pytest.mark.parametrize("data, reason", [
    (b"", "not a readable image"),
    (png_header(1, 1)[:30], "not a readable image"),  # truncated header
    (b"GIF89a" + b"\xff" * 20, "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable image"),
])
def test_malformed_headers_are_bad_files(tmp_path, data, reason):
    (tmp_path / "x.png").write_bytes(data)
    with pytest.raises(BadFile, match=reason):
        decode_image(tmp_path / "x.png")


# --- model files: metadata and weights checked before they are used ---------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"image_size": 100_000}, "records image_size 100000; petseg takes a multiple of 32 from 32 to 1024"),
    ({"image_size": "64"}, "records image_size '64'"),
    ({"tta_hflip": "no"}, "records tta_hflip 'no'; it is true or false"),
    ({"threshold": float("nan")}, "records threshold nan"),
    ({"threshold": 5}, "records threshold 5"),
    ({"model": ["unet"]}, "records model \"['unet']\""),
])
def test_onnx_metadata_is_checked_before_any_photo(tmp_path, change, message):
    path = onnx_model(tmp_path / "m.onnx", META | change)
    photo(tmp_path / "photos" / "cat.png")
    line = one_line(petseg("predict", tmp_path / "photos", "--model", path, "--out", tmp_path / "out"))
    assert line.startswith(f"petseg predict: error: {path}: ") and message in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("meta", ["[1, 2]", "{" * 5000, "not json"])
def test_onnx_metadata_that_is_no_mapping_is_one_line(tmp_path, meta):
    path = onnx_model(tmp_path / "m.onnx", meta)
    photo(tmp_path / "cat.png")
    line = one_line(petseg("predict", tmp_path / "cat.png", "--model", path, "--out", tmp_path / "out"))
    assert line == f"petseg predict: error: {path}: its 'petseg' metadata_props is not petseg's JSON"


@pytest.mark.parametrize("graph, message", [
    ("fails", "onnxruntime failed running it on (1, 64, 64, 3) photos"),
    ("wrong shape", "logits for (1, 64, 64, 3) photos, not float (1, 1, 64, 64): not petseg's graph"),
])
def test_an_onnx_graph_that_fails_or_returns_another_shape_is_one_line(tmp_path, graph, message):
    path = onnx_model(tmp_path / "m.onnx", META, graph)
    photo(tmp_path / "cat.png")
    line = one_line(petseg("predict", tmp_path / "cat.png", "--model", path, "--out", tmp_path / "out"))
    assert line.startswith(f"petseg predict: error: {path}: ") and message in line
    assert not (tmp_path / "out").exists()


def test_an_onnx_graph_that_asks_for_160_gb_is_one_line_under_a_memory_limit(tmp_path):
    path = onnx_model(tmp_path / "m.onnx", META, "memory")
    photo(tmp_path / "cat.png")
    line = one_line(petseg("predict", tmp_path / "cat.png", "--model", path, "--out", tmp_path / "out", limit_gb=2))
    assert line.startswith(f"petseg predict: error: {path}: onnxruntime failed running it on (1, 64, 64, 3) photos")
    assert not (tmp_path / "out").exists()


def test_an_archive_over_the_member_limit_is_refused_before_extracting(tmp_path, monkeypatch):
    import tarfile

    from petseg.data import archives
    folder = small_folder(tmp_path / "pets")
    with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as tar:
        tar.add(folder / "images", arcname="images")
    monkeypatch.setattr(archives, "MAX_ARCHIVE_MEMBERS", 2)  # 3 photos and their folder
    with pytest.raises(archives.DownloadError, match="unsafe member refused, nothing extracted \\(over 2 members"):
        archives.extract({"images.tar.gz": tmp_path / "images.tar.gz"}, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def checkpoint(path: Path, **payload) -> Path:
    import torch
    torch.save({"model": "unet", "arch": {"base_channels": 4}, "image_size": 64, "state_dict": {}} | payload, path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "not a petseg checkpoint (not a zip as torch.save writes"),
    (lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 10), "not a petseg checkpoint (not a zip"),
    (lambda p: checkpoint(p, image_size=100_000), "records image_size 100000"),
    (lambda p: checkpoint(p, arch={"base_channels": "4"}), "is not a mapping of names to positive integers"),
    (lambda p: checkpoint(p, arch={"evil": 3}), "does not build a unet"),
    (lambda p: checkpoint(p, model="../../x"), "names model '../../x'; petseg's are unet, resnet34_unet"),
    (lambda p: checkpoint(p, precision="fp8"), "records precision 'fp8'"),
    (lambda p: checkpoint(p), "do not fit the unet {'base_channels': 4} it names (encoder.0.0.weight: missing"),
    (lambda p: checkpoint(p, state_dict=[1, 2]), "its state_dict is not a mapping of weights"),
])
def test_broken_checkpoints_are_one_line(tmp_path, make, message):
    from petseg.models.checkpoint import load_checkpoint
    path = tmp_path / "m.pt"
    make(path)
    with pytest.raises(PetsegError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_a_wide_architecture_without_weights_is_refused_before_it_is_built(tmp_path):
    path = checkpoint(tmp_path / "wide.pt", arch={"base_channels": 4096})
    assert path.stat().st_size < 2000
    line = one_line(petseg("evaluate", "--checkpoint", path, limit_gb=3))
    assert line == (f"petseg evaluate: error: {path}: a unet {{'base_channels': 4096}} has 127,071,563,777 "
                    "parameters; petseg takes models of at most 150,000,000")


def test_a_compressed_gigabyte_in_a_checkpoint_is_refused_before_it_is_inflated(tmp_path):
    small, path = checkpoint(tmp_path / "small.pt"), tmp_path / "bomb.pt"
    with zipfile.ZipFile(small) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with dst.open("small/data/9", "w", force_zip64=True) as member:
            zeros = bytes(1 << 24)
            for _ in range(65):  # 1.02 GiB
                member.write(zeros)
    assert path.stat().st_size < 8_000_000
    line = one_line(petseg("evaluate", "--checkpoint", path, limit_gb=3))
    assert line.startswith(f"petseg evaluate: error: {path}: would inflate to 109") and "at most 1073741824" in line


# --- a data folder cannot smuggle in files from elsewhere --------------------------------------------------------

def folder_params(tmp_path: Path, folder: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="folder", folder=str(folder))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


def small_folder(folder: Path) -> Path:
    for stem in ("a", "b", "c"):
        photo(folder / "images" / f"{stem}.jpg")
        (folder / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40), 1, np.uint8)).save(folder / "annotations" / "trimaps" / f"{stem}.png")
    (folder / "annotations" / "list.txt").write_text("a 1 1 1\nb 1 1 1\nc 1 1 1\n")
    (folder / "annotations" / "trainval.txt").write_text("a 1 1 1\nc 1 1 1\n")
    (folder / "annotations" / "test.txt").write_text("b 1 1 1\n")
    return folder


def test_a_link_out_of_the_data_folder_is_refused_and_nothing_is_copied(tmp_path):
    secret = tmp_path / "home" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY")
    pets = small_folder(tmp_path / "pets")
    (pets / "images" / "d.jpg").symlink_to(secret)
    project = tmp_path / "project"
    project.mkdir()
    line = one_line(petseg("--params", folder_params(project, pets), "download", cwd=project))
    assert line == (f"petseg download: error: {pets}: images/d.jpg links to {secret}, outside the folder; copy the "
                    "file into the folder instead (nothing was copied)")
    assert not (project / "data").exists() or not any((project / "data").rglob("*"))
    assert secret.read_text() == "PRIVATE KEY"


def test_only_the_layouts_files_are_copied_and_links_inside_the_folder_are_followed(tmp_path):
    pets = small_folder(tmp_path / "pets")
    (pets / "images" / "notes.txt").write_text("not a photo")
    (pets / "annotations" / "xmls").mkdir()
    (pets / "annotations" / "xmls" / "a.xml").write_text("<xml/>")
    os.mkfifo(pets / "images" / "pipe.jpg")  # would block a copy
    shutil.move(pets / "images" / "b.jpg", pets / "b_real.jpg")
    (pets / "images" / "b.jpg").symlink_to(pets / "b_real.jpg")  # a link inside the folder
    project = tmp_path / "project"
    project.mkdir()
    result = petseg("--params", folder_params(project, pets), "download", cwd=project)
    assert result.returncode == 0, result.stderr
    assert sorted(files(project / "data" / "raw")) == [
        "annotations/list.txt", "annotations/test.txt", "annotations/trainval.txt", "annotations/trimaps/a.png",
        "annotations/trimaps/b.png", "annotations/trimaps/c.png", "images/a.jpg", "images/b.jpg", "images/c.jpg"]


def test_a_hand_placed_raw_folder_with_leakage_is_refused_by_preprocess(tmp_path):
    from petseg.data.preprocess import preprocess
    raw = small_folder(tmp_path / "raw")
    (raw / "annotations" / "test.txt").write_text("b 1 1 1\na 1 1 1\n")
    with pytest.raises(PetsegError, match="1 stems listed in both annotations/trainval.txt and annotations/test.txt"
                                          r" \(test photos would be trained on\): a$"):
        preprocess(raw, tmp_path / "out", 32, 0.5, seed=0)
    assert not (tmp_path / "out").exists()


def test_a_list_file_cannot_name_a_photo_outside_the_folder(tmp_path):
    from petseg.data.preprocess import preprocess
    raw = small_folder(tmp_path / "raw")
    photo(tmp_path / "outside.jpg")
    (raw / "annotations" / "test.txt").write_text("b 1 1 1\n../../outside 1 1 1\n")
    with pytest.raises(PetsegError, match=r"test.txt:2: '\.\./\.\./outside' is not a file name"):
        preprocess(raw, tmp_path / "out", 32, 0.5, seed=0)


# --- outputs: whole or nothing, never onto an input --------------------------------------------------------------

def test_an_interrupted_predict_leaves_the_output_folder_as_it_was(tmp_path):
    from petseg.inference.photos import predict_photos
    from petseg.inference.settings import Settings

    class Interrupted:
        calls = 0

        def probabilities(self, images, batch_size, tta_hflip=False):
            Interrupted.calls += 1
            if Interrupted.calls == 2:
                raise KeyboardInterrupt
            return np.zeros(images.shape[:3], np.float32)

    photos = [photo(tmp_path / "photos" / f"p{i}.png") for i in range(4)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "p0_mask.png").write_bytes(b"earlier mask")
    with pytest.raises(KeyboardInterrupt):
        predict_photos(Interrupted(), 32, photos, out, Settings(0.5, False, 2))
    assert files(out) == {"p0_mask.png": b"earlier mask"}  # no new output, no temporary file


def test_predict_refuses_an_output_folder_inside_the_photos_and_outputs_onto_photos(model, tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "cat.png")
    photo(photos / "cat_mask.png")
    before = files(photos)
    line = one_line(petseg("predict", photos, "--model", model, "--out", photos / "masks"))
    assert line.startswith(f"petseg predict: error: --out {photos / 'masks'}: is inside the photo folder {photos}")
    # photos given one by one, with the output folder where they are: cat's mask would replace cat_mask.png
    line = one_line(petseg("predict", photos / "cat.png", photos / "cat_mask.png", "--model", model, "--out", photos))
    assert line == (f"petseg predict: error: {photos / 'cat_mask.png'}: is an input of this command; writing there "
                    "would replace it")
    assert files(photos) == before


def test_a_photo_named_dot_dot_writes_inside_the_output_folder(model, tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "..png")
    result = petseg("predict", photos / "..png", "--model", model, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(files(tmp_path / "out")) == ["__mask.png", "__overlay.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]


@pytest.mark.parametrize("make, message", [
    (lambda p: os.mkfifo(p / "pipe.png"), "pipe.png: not a regular file or folder"),
])
def test_predict_refuses_what_is_no_regular_file(model, tmp_path, make, message):
    make(tmp_path)
    line = one_line(petseg("predict", tmp_path / "pipe.png", "--model", model, "--out", tmp_path / "out"))
    assert line.endswith(message)


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size 0: takes 1 to 4096 photos"),
    (["--threshold", "nan"], "--threshold nan: a threshold is a number between 0 and 1"),
])
def test_predict_flags_are_checked(model, tmp_path, flags, message):
    photo(tmp_path / "cat.png")
    line = one_line(petseg("predict", tmp_path / "cat.png", "--model", model, "--out", tmp_path / "out", *flags))
    assert line == f"petseg predict: error: {message}"


def test_export_refuses_an_output_onto_its_checkpoint_or_twice(tmp_path):
    import torch

    from petseg.models.build import build_model
    from petseg.models.checkpoint import save_checkpoint
    ckpt = tmp_path / "unet.pt"
    save_checkpoint(ckpt, build_model("unet", {"base_channels": 4}).state_dict(), "unet", {"base_channels": 4}, 64)
    before = ckpt.read_bytes()
    line = one_line(petseg("export", "--checkpoint", ckpt, "--out", ckpt, cwd=tmp_path))
    assert line == f"petseg export: error: {ckpt}: is an input of this command; writing there would replace it"
    line = one_line(petseg("export", "--checkpoint", ckpt, ckpt, "--out", tmp_path / "a.onnx", tmp_path / "a.onnx",
                           cwd=tmp_path))
    assert line.endswith("a.onnx: given as the output of two things; each would overwrite the other")
    assert ckpt.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["unet.pt"]
    del torch


def test_a_failing_preprocess_leaves_the_earlier_outputs_whole(tmp_path):
    from petseg.data.preprocess import preprocess
    raw = small_folder(tmp_path / "raw")
    out = tmp_path / "out"
    preprocess(raw, out, 32, 0.5, seed=0)
    before = files(out)
    (raw / "images" / "b.jpg").write_bytes(b"broken")  # the test split's only photo: the split is left empty
    with pytest.raises(PetsegError, match="split 'test' is empty"):
        preprocess(raw, out, 64, 0.5, seed=0)
    assert files(out) == before


# --- params: what passes check never crashes a stage later --------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(12))


@pytest.mark.parametrize("text, message", [
    ("seed: 1\nseed: 2\n", "not valid YAML (key 'seed' given twice at line 2)"),
    (BOMB, "not valid YAML (aliases (*name) are not taken in params files at line 2)"),
    ("a: " + "[" * 10_000 + "]" * 10_000 + "\n", "not valid YAML (nested deeper than 16 levels at line 1)"),
    ("seed: " + "9" * 5000 + "\n", "not valid YAML (Exceeds the limit (4300 digits)"),
])
def test_hostile_yaml_is_refused_in_one_line(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        load_params(tmp_path / "params.yaml")


def test_params_that_are_not_text_or_too_large_are_one_line(tmp_path):
    (tmp_path / "params.yaml").write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(ParamError, match=r"^not UTF-8 text \(invalid start byte at byte 6\)$"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("# padding\n" * 200_000)
    with pytest.raises(ParamError, match=r"^2000000 bytes; a params file is at most 1048576$"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("key, value, message", [
    ("seed", 2**70, "seed: 1180591620717411303424 must be <= 4.29497e+09"),
    ("preprocess.image_size", 100_000, "preprocess.image_size: 100000 must be <= 1024"),
    ("preprocess.max_pixels", 10**12, "preprocess.max_pixels: 1000000000000 must be <= 2e+08"),
    ("data.timeout", float("inf"), "data.timeout: inf must be a finite number"),
    ("evaluate.threshold", float("nan"), "evaluate.threshold: nan must be a finite number"),
    ("lr", float("inf"), "lr: inf must be a finite number"),
    ("unet.base_channels", 100_000, "unet.base_channels: 100000 must be <= 128"),
    ("train.batch_size", 10**9, "train.batch_size: 1000000000 must be <= 4096"),
    ("evaluate.bootstrap_samples", 10**12, "evaluate.bootstrap_samples: 1000000000000 must be <= 100000"),
    ("train.num_workers", 10**6, "train.num_workers: 1000000 must be <= 64"),
    ("data.url", "file:///etc/passwd", "data.url: 'file:///etc/passwd' must be an http:// or https:// address"),
])
def test_values_that_would_crash_a_stage_later_are_refused_by_check(tmp_path, key, value, message):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    section, _, name = key.rpartition(".")
    (params[section] if section else params)[name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = petseg("check", "--out", tmp_path / "ok", cwd=tmp_path)
    assert one_line(result, 2) == f"petseg: params.yaml: {message}"
    assert not (tmp_path / "ok").exists()
