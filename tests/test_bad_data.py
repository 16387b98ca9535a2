"""The preprocess stage meets broken and unusual files, built on the fly, each with a deliberate outcome."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from petseg.data.arrays import load_split
from petseg.data.decode import BadFile
from petseg.data.preprocess import preprocess
from tests.conftest import REPO

SIZE = 32
H, W = 60, 80  # photo size used by most cases


def trimap(h=H, w=W) -> Image.Image:
    """Pet (1) in the left half, background (2) in the right, a border (3) column between."""
    t = np.full((h, w), 2, np.uint8)
    t[:, : w // 2] = 1
    t[:, w // 2] = 3
    return Image.fromarray(t)


def gradient(h=H, w=W) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 90)], -1).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def jpeg(h=H, w=W) -> bytes:
    return encode(Image.fromarray(gradient(h, w)), "JPEG", quality=95)


def palette_image() -> Image.Image:
    return Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)


# stem -> (photo bytes or None, trimap image or None, expected outcome)
CASES = {
    "good": (jpeg(), trimap(), "ok"),
    "truncated": (jpeg()[:400], trimap(), "not a readable image"),
    "zero_bytes": (b"", trimap(), "not a readable image"),
    "not_an_image": (b"%PDF-1.4 this is a document", trimap(), "not a readable image"),
    "missing_trimap": (jpeg(), None, "missing"),
    "bad_trimap_values": (jpeg(), Image.fromarray(np.array(trimap()) * 0 + 7), "outside {1, 2, 3}"),
    "smaller_trimap_same_shape": (jpeg(), trimap(H // 2, W // 2), "ok"),
    "trimap_other_shape": (jpeg(), trimap(W, H), "other aspect ratio"),
    "grayscale": (encode(Image.fromarray(gradient()[..., 0]), "PNG"), trimap(), "ok"),
    "cmyk": (encode(Image.fromarray(gradient()).convert("CMYK"), "JPEG", quality=95), trimap(), "ok"),
    "rgba": (encode(Image.fromarray(gradient()).convert("RGBA"), "PNG"), trimap(), "ok"),
    "palette": (encode(palette_image(), "PNG"), trimap(), "ok"),
    "sixteen_bit": (encode(Image.fromarray((np.arange(W, dtype=np.uint16) * 800)[None].repeat(H, 0)), "PNG"),
                    trimap(), "ok"),
    "gif": (encode(palette_image(), "GIF"), trimap(), "ok"),
    "one_pixel": (encode(Image.new("RGB", (1, 1), "red"), "JPEG"), trimap(1, 1), "under preprocess.min_side"),
}


@pytest.fixture(scope="module")
def messy_raw(tmp_path_factory) -> Path:
    """An official-layout folder holding every case; all stems in trainval, plus one good test pair."""
    raw = tmp_path_factory.mktemp("messy") / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "annotations" / "trimaps").mkdir(parents=True)
    cases = CASES | {"test_good": CASES["good"]}
    for stem, (photo, tri, _) in cases.items():
        (raw / "images" / f"{stem}.jpg").write_bytes(photo)  # every photo named .jpg, as in the dataset
        if tri is not None:
            tri.save(raw / "annotations" / "trimaps" / f"{stem}.png")
    (raw / "annotations" / "trainval.txt").write_text("".join(f"{s} 1 1 1\n" for s in CASES))
    (raw / "annotations" / "test.txt").write_text("test_good 1 1 1\n")
    return raw


@pytest.fixture(scope="module")
def processed(messy_raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("processed")
    preprocess(messy_raw, out, SIZE, valid_fraction=0.2, seed=0, on_bad_file="skip", min_side=8, workers=2)
    return out


def all_pairs(processed: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pairs = {}
    for split in ("train", "valid", "test"):
        s = load_split(processed, split)
        pairs |= {stem: (s.images[i], s.masks[i]) for i, stem in enumerate(s.stems)}
    return pairs


def test_each_case_is_decoded_or_skipped_with_its_reason(processed):
    with open(processed / "skipped.csv", newline="") as f:
        skipped = {row["stem"]: row["reason"] for row in csv.DictReader(f)}
    pairs = all_pairs(processed)
    for stem, (_, _, outcome) in CASES.items():
        if outcome == "ok":
            assert stem in pairs and stem not in skipped, stem
        else:
            assert stem not in pairs, stem
            assert outcome in skipped[stem], (stem, skipped[stem])
            assert "\n" not in skipped[stem] and f"{stem}." in skipped[stem]  # one line naming the file


def expected_mask(h=H, w=W) -> np.ndarray:
    return (np.array(trimap(h, w).resize((SIZE, SIZE), Image.Resampling.NEAREST)) != 2).astype(np.uint8)


def test_decoded_cases_have_the_right_pixels(processed):
    pairs = all_pairs(processed)
    reference = np.asarray(Image.fromarray(gradient()).resize((SIZE, SIZE), Image.Resampling.BILINEAR), np.int16)
    for stem in ("good", "cmyk", "rgba", "palette", "gif"):
        image, mask = pairs[stem]
        assert np.abs(image.astype(np.int16) - reference).mean() < 12, stem  # lossy formats, same picture
        np.testing.assert_array_equal(mask, expected_mask())
    gray = pairs["grayscale"][0]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_array_equal(gray[..., 0], reference[..., 0])
    # 16-bit: 0..63200 across the width must become 0..246 across it (scaled, not clipped at 255)
    deep = pairs["sixteen_bit"][0][..., 0].astype(int)
    assert deep[:, 0].max() < 10 and 230 < deep[:, -1].min() < 250
    # a trimap saved at half size (same aspect ratio) is resized with nearest like any other
    np.testing.assert_array_equal(pairs["smaller_trimap_same_shape"][1], expected_mask(H // 2, W // 2))


def test_counts_and_report(processed):
    with open(processed / "skipped.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(outcome != "ok" for _, _, outcome in CASES.values())
    assert set(rows[0]) == {"stem", "split", "reason"}


def test_fail_mode_stops_at_the_first_bad_file(messy_raw, tmp_path):
    with pytest.raises(BadFile, match=r"\.jpg: not a readable image|: missing|outside|aspect|min_side"):
        preprocess(messy_raw, tmp_path, SIZE, 0.2, 0, on_bad_file="fail", min_side=8)
    assert not (tmp_path / "manifest.csv").exists()


def test_a_very_large_photo_is_decoded(tmp_path):
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "annotations" / "trimaps").mkdir(parents=True)
    big = Image.fromarray(gradient(90, 120)).resize((12000, 9000), Image.Resampling.NEAREST)
    big.save(raw / "images" / "big.jpg", quality=80)
    trimap(9000, 12000).save(raw / "annotations" / "trimaps" / "big.png")
    for stem in ("small", "test"):
        (raw / "images" / f"{stem}.jpg").write_bytes(jpeg())
        trimap().save(raw / "annotations" / "trimaps" / f"{stem}.png")
    (raw / "annotations" / "trainval.txt").write_text("big\nsmall\n")
    (raw / "annotations" / "test.txt").write_text("test\n")
    counts = preprocess(raw, tmp_path / "out", SIZE, 0.5, seed=0)
    assert counts["skipped"] == 0 and counts["train"] + counts["valid"] == 2
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        sizes = {row["stem"]: (row["height"], row["width"]) for row in csv.DictReader(f)}
    assert sizes["big"] == ("9000", "12000")


def test_an_empty_split_is_an_error(messy_raw, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "images").symlink_to(messy_raw / "images")
    (raw / "annotations").mkdir()
    (raw / "annotations" / "trimaps").symlink_to(messy_raw / "annotations" / "trimaps")
    (raw / "annotations" / "trainval.txt").write_text("good\nrgba\n")
    (raw / "annotations" / "test.txt").write_text("truncated\nzero_bytes\n")  # both unusable
    with pytest.raises(ValueError, match="split 'test' is empty"):
        preprocess(raw, tmp_path / "out", SIZE, 0.5, seed=0)


def test_the_stage_prints_the_count_and_never_a_traceback(messy_raw, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["preprocess"].update(image_size=SIZE, valid_fraction=0.2, min_side=8)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = [sys.executable, "-m", "petseg", "preprocess", "--raw", str(messy_raw), "--out", "out", "--counts", "c.json"]
    result = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    n_bad = sum(outcome != "ok" for _, _, outcome in CASES.values())
    assert f"skipped {n_bad} (listed in out/skipped.csv)" in result.stderr
    params["preprocess"]["on_bad_file"] = "fail"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("petseg preprocess: error: ")
