"""Bad params and bad files end in one line naming the key or file, with the documented exit code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from petseg.core.config import ParamError, load_params
from petseg.models.build import build_model
from petseg.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import REPO


def petseg(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "petseg", *args], cwd=cwd, capture_output=True, text=True)


def write_params(tmp_path: Path, change) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda p: p["preprocess"].update(image_size=100), "preprocess.image_size: 100 must be a multiple of 32"),
    (lambda p: p.update(lr=-1e-3), "lr: -0.001 must be > 0"),
    (lambda p: p["train"].update(batch_size=0), "train.batch_size: 0 must be >= 1"),
    (lambda p: p["train"].update(bach_size=8), "train.bach_size: unknown key (did you mean batch_size?); allowed here: batch_size"),
    (lambda p: p["data"].update(source="ftp"), "data.source: 'ftp' is not one of sample, full, folder"),
    (lambda p: p["preprocess"].update(valid_fraction=1.0), "preprocess.valid_fraction: 1.0 must be < 1"),
    (lambda p: p["unet"].pop("epochs"), "unet.epochs: missing"),
    (lambda p: p["tune"].update(n_trials=0), "tune.n_trials: 0 (no tuning) needs a fixed learning rate: set lr"),
    (lambda p: (p["tune"].update(n_trials=0), p["unet"].update(lr=1e-3)),
     "tune.n_trials: 0 (no tuning) needs a fixed learning rate: set lr, e.g. lr: 2.0e-3 (or resnet34_unet.lr)"),
    (lambda p: p["resnet34_unet"].update(lr=0), "resnet34_unet.lr: 0 must be > 0"),
    (lambda p: p["unet"].update(batch_size=8.0), "unet.batch_size: 8.0 is not an integer or null"),
    (lambda p: p["train"].update(progressive_size=96),
     "train.progressive_size: 96 must be < preprocess.image_size (96), or null"),
    (lambda p: p["train"].update(progressive_size=48), "train.progressive_size: 48 must be a multiple of 32"),
    (lambda p: p["train"].update(progressive_fraction=1.5), "train.progressive_fraction: 1.5 must be <= 1"),
    (lambda p: p["resnet34_unet"].update(progressive_size=96),
     "resnet34_unet.progressive_size: 96 must be < preprocess.image_size (96), or null"),
    # pydantic's errors, said in the same words: a bool or a float where an integer goes, a range, a nested key
    (lambda p: p["train"].update(num_workers=True), "train.num_workers: True is not an integer"),
    (lambda p: p["train"].update(batch_size=8.0), "train.batch_size: 8.0 is not an integer"),
    (lambda p: p["train"].update(channels_last="yes"), "train.channels_last: 'yes' is not one of True, False"),
    (lambda p: p["augment"].update(rotate="15"), "augment.rotate: '15' is not a number"),
    (lambda p: p["augment"].update(crop_scale=[0.9, 0.5]), "augment.crop_scale: [0.9, 0.5] must have low <= high"),
    (lambda p: p["augment"].update(noise_std=[0.1]), "augment.noise_std: [0.1] must be a list [low, high]"),
    (lambda p: p["augment"].update(noise_std=[0.1, 2]), "augment.noise_std: 2 must be <= 1"),
    (lambda p: p["data"]["archives"]["full"].pop("images.tar.gz"), "data.archives.full.images.tar.gz: missing"),
    (lambda p: p["data"]["archives"]["sample"]["annotations.tar.gz"].update(md5=""),
     "data.archives.sample.annotations.tar.gz.md5: '' must be a non-empty string"),
    (lambda p: p["data"]["archives"].update(mirror={}), "data.archives.mirror: unknown key; allowed here: sample, full"),
    (lambda p: p.update(visualize=3), "visualize: must be a mapping, got 3"),
    # a misspelt key is named first, beside the key it misses
    (lambda p: p["unet"].update(epocs=p["unet"].pop("epochs")),
     "unet.epocs: unknown key (did you mean epochs? unet.epochs is missing); allowed here: base_channels, epochs"),
    (lambda p: p["train"].update(bach_size=p["train"].pop("batch_size")),
     "train.bach_size: unknown key (did you mean batch_size? train.batch_size is missing); allowed here: batch_size"),
    (lambda p: p.update(epochs=3), "epochs: unknown key; allowed here: seed, lr, data"),
])
def test_bad_params_are_refused_with_the_key(tmp_path, change, message):
    path = write_params(tmp_path, change)
    with pytest.raises(ParamError, match="^" + re.escape(message)):
        load_params(path)


def test_bad_params_exit_2_with_one_line_before_any_work(tmp_path):
    path = write_params(tmp_path, lambda p: p["unet"].update(epochs=0))
    result = petseg("--params", str(path), "train", "--model", "unet")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"petseg: {path}: unet.epochs: 0 must be >= 1"]


def test_a_model_s_own_lr_and_batch_size_win_over_the_shared_ones(tmp_path):
    params = load_params(write_params(tmp_path, lambda p: (
        p.update(lr=1e-3), p["train"].update(batch_size=8), p["resnet34_unet"].update(lr=4e-3, batch_size=32))))
    assert (params.lr_for("unet"), params.lr_for("resnet34_unet")) == (1e-3, 4e-3)
    assert (params.train_for("unet").batch_size, params.train_for("resnet34_unet").batch_size) == (8, 32)
    rest = params.train_for("resnet34_unet").model_dump(exclude={"batch_size"})
    assert rest == params.train.model_dump(exclude={"batch_size"})


def test_a_model_s_own_first_crop_size_wins_over_the_shared_one(tmp_path):
    params = load_params(write_params(tmp_path, lambda p: (
        p["train"].update(progressive_size=64), p["resnet34_unet"].update(progressive_size=32))))
    unet, resnet = params.train_for("unet"), params.train_for("resnet34_unet")
    assert (unet.progressive_size, resnet.progressive_size) == (64, 32)
    assert resnet.model_dump(exclude={"progressive_size"}) == params.train.model_dump(exclude={"progressive_size"})
    assert (unet.small_epochs(24), unet.small_epochs(5)) == (12, 2)  # progressive_fraction 0.5, rounded down


def test_the_shipped_params_are_valid():
    assert load_params(REPO / "params.yaml").data.source == "sample"


def test_evaluate_missing_checkpoint_is_one_line(tmp_path):
    result = petseg("evaluate", "--checkpoint", str(tmp_path / "nope.pt"))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"petseg evaluate: error: {tmp_path / 'nope.pt'}: no such checkpoint file "
                                     f"(`dvc checkout {tmp_path / 'nope.pt'}` restores it from the DVC cache, "
                                     "`dvc pull` from a remote you set up, `dvc repro` trains it)")


def test_evaluate_refuses_a_file_that_is_no_checkpoint(tmp_path):
    bogus = tmp_path / "photo.pt"
    bogus.write_bytes(b"\xff\xd8\xff\xe0 not a checkpoint")
    result = petseg("evaluate", "--checkpoint", str(bogus))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "not a petseg checkpoint" in result.stderr


class Payload:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_pickled_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "executed"
    Payload.marker = marker
    evil = tmp_path / "evil.pt"
    torch.save({"model": "unet", "state_dict": {}, "x": Payload()}, evil)
    with pytest.raises(CheckpointError, match="unsafe to load"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path):
    model = build_model("unet", {"base_channels": 4})
    save_checkpoint(tmp_path / "m.pt", model.state_dict(), "unet", {"base_channels": 4}, 64, epoch=3, valid_dice=0.5)
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["model"] == "unet" and meta["epoch"] == 3 and meta["image_size"] == 64
    assert meta["torch_version"] == "2.13.0"
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_profile_prints_the_exp_run_arguments_of_a_checked_profile(tmp_path):
    profile = tmp_path / "small.yaml"
    profile.write_text("unet: {epochs: 3}\naugment: {crop_scale: [0.5, 1.0]}\ndata: {source: full}\n")
    result = petseg("profile", str(profile))
    assert result.returncode == 0, result.stderr
    # stdout holds only the arguments, so that `dvc exp run $(petseg profile ...)` works
    assert result.stdout.split() == ["-S", "unet.epochs=3", "-S", "augment.crop_scale=[0.5,1.0]",
                                     "-S", "data.source=full"]
    assert "3 params" in result.stderr


@pytest.mark.parametrize("text, message", [
    ("unet: {epoch: 3}\n", "unet.epoch: unknown key"),
    ("preprocess: {image_size: 250}\n", "preprocess.image_size: 250 must be a multiple of 32"),
])
def test_a_bad_profile_is_refused_with_the_key(tmp_path, text, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text(text)
    result = petseg("profile", str(profile))
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_shipped_full_profile_is_valid():
    args = petseg("profile", "profiles/full.yaml").stdout.split()
    assert "data.source=full" in args and "preprocess.image_size=256" in args and "unet.base_channels=64" in args


def test_the_shipped_full_cpu_profile_reads_a_local_copy_the_user_names_with_a_fixed_lr():
    args = petseg("profile", "profiles/full-cpu.yaml").stdout.split()
    assert "data.source=folder" in args and not any(a.startswith("data.folder=") for a in args)  # no ../shared
    assert "tune.n_trials=0" in args and "lr=0.002" in args


def test_no_tuning_writes_empty_trials_and_no_study(tmp_path, tiny_processed):
    def change(params):
        params.update(lr=2e-3)
        params["tune"].update(n_trials=0, storage=str(tmp_path / "study.journal"))
    path = write_params(tmp_path, change)
    for name in ("unet", "resnet34_unet"):
        result = petseg("--params", str(path), "tune", "--model", name, "--data", str(tiny_processed),
                        "--metrics", str(tmp_path / f"tune_{name}.json"), "--plot", str(tmp_path / f"tune_{name}.csv"),
                        "--timings", str(tmp_path / "timings.jsonl"))  # not the project's own log
        assert result.returncode == 0, result.stderr
        assert f"no search (tune.n_trials 0): {name} trains with lr 2.00e-03" in result.stderr
        tuned = json.loads((tmp_path / f"tune_{name}.json").read_text())
        assert tuned["best_lr"] is None and tuned["n_trials"] == 0
        assert (tmp_path / f"tune_{name}.csv").read_text() == "trial,lr,valid_dice,epochs,pruned\n"
    assert not (tmp_path / "study.journal").exists()
    logged = [json.loads(line) for line in (tmp_path / "timings.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["model"], e["seconds"]) for e in logged] == [("tune", "unet", 0.0), ("tune", "resnet34_unet", 0.0)]


def test_bench_from_a_saved_run_writes_its_table_into_the_readme(tmp_path):
    settings = {"channels_last": True, "persistent_workers": True, "fused_adam": True, "amp": True,
                "deterministic": True}
    result = {"machine": {"cpu": "x86_64", "threads": 16, "torch": "2.11.0", "python": "3.12", "gpu": "NVIDIA H200"},
              "device": "cuda", "image_size": 256, "batch_size": 16, "num_workers": 8, "repeats": 5,
              "petseg_settings": settings,
              "input_pipeline_img_per_s": {"decode_per_sample": 500.0, "preprocessed_arrays": 1250.0},
              "train_step_img_per_s": {"unet@256": {"fp32_nchw": 300.0, "petseg": 750.0, "speedup": 2.5}},
              "epoch_seconds": {"model": "unet", "straightforward": 1.8, "petseg": 0.6, "speedup": 3.0},
              "inference_img_per_s": {"unet": 1700.0}}
    saved = tmp_path / "bench.json"
    saved.write_text(json.dumps(result))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench-gpu:start -->\nold\n<!-- bench-gpu:end -->\nafter\n")
    committed = (REPO / "metrics" / "bench.json").read_bytes()
    run = petseg("bench", "--from", str(saved), "--readme", str(readme), "--section", "bench-gpu")
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "old" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "`petseg bench` on NVIDIA H200, torch 2.11.0; 256 px, batch 16, 8 loader workers, median of 5; " \
           "petseg = channels_last, persistent workers, fused Adam, AMP, deterministic kernels" in text
    assert "| input pipeline, img/s | 500.0 (decode JPEG per sample) | 1250.0 (uint8 arrays) | 2.50x |" in text
    assert "| train step unet@256, img/s | 300.0 (fp32 NCHW) | 750.0 | 2.50x |" in text
    assert "| whole epoch (unet), s | 1.8 | 0.6 | 3.00x |" in text
    assert (REPO / "metrics" / "bench.json").read_bytes() == committed  # nothing measured, nothing written


def test_a_hand_written_exponent_is_a_number(tmp_path):
    text = (REPO / "params.yaml").read_text()
    assert "\nlr: null" in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("\nlr: null", "\nlr: 1e-3").replace("lr_min: 5.0e-4", "lr_min: 5E-4"))
    params = load_params(path)
    assert params.lr == 0.001 and params.tune.lr_min == 0.0005
    path.write_text(text.replace("\nlr: null", "\nlr: '1e-3'"))  # quoted, it is a string: refused
    with pytest.raises(ParamError, match="lr: '1e-3' is not a number or null"):
        load_params(path)


def test_a_bad_profile_is_reported_under_its_own_name(tmp_path):
    profile = tmp_path / "prof.yaml"
    profile.write_text("unet: {epoch: 3}\n")
    result = petseg("profile", str(profile))
    assert result.stderr.startswith(f"petseg: {profile}: unet.epoch: unknown key")
    result = petseg("--params", str(tmp_path / "nope.yaml"), "train", "--model", "unet")
    assert result.stderr.strip() == f"petseg: {tmp_path / 'nope.yaml'}: no such params file"


@pytest.mark.parametrize("text, message", [
    (None, "not a regular file; a params file is YAML text"),
    ("", "empty: a params file is a mapping of seed, lr, data, preprocess"),
    ("# nothing but a comment\n", "empty: a params file is a mapping of seed, lr, data, preprocess"),
    ("[1, 2]\n", ("must be a mapping of seed, lr, data, preprocess, augment, train, unet, resnet34_unet, tune, "
                 "evaluate, visualize; got list '[1, 2]'")),
    ("seed: [1,\nlr: 2\n", "not valid YAML (expected ',' or ']', but got '<stream end>' at line 3)"),
])
def test_an_empty_or_odd_params_file_is_named_as_given(tmp_path, text, message):
    path = Path("/dev/null") if text is None else tmp_path / "mine.yaml"
    if text is not None:
        path.write_text(text)
    result = petseg("--params", str(path), "check", "--out", str(tmp_path / "ok"))
    assert result.returncode == 2 and result.stderr.startswith(f"petseg: {path}: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "params.yaml" not in result.stderr


def test_a_library_message_is_cut_at_a_sentence_or_a_word():
    from petseg.core.errors import brief
    torch_says = ('Expected hasRecord("version") to be true, but got false.  (Could this error message be improved?  '
                  "If so, please report an enhancement request to PyTorch.)")
    assert brief(RuntimeError(torch_says)) == 'Expected hasRecord("version") to be true, but got false'
    assert brief(ValueError("word " * 40)) == "word " * 23 + "word ..."  # 120 characters at most, whole words
    assert brief(ValueError("size 3.5 px. Next")) == "size 3.5 px" and brief(KeyError()) == "KeyError"


def test_check_writes_the_same_marker_for_any_valid_params_and_refuses_bad_ones(tmp_path):
    markers = []
    for epochs in (3, 30):
        path = write_params(tmp_path, lambda p: p["unet"].update(epochs=epochs))
        assert petseg("--params", str(path), "check", "--out", str(tmp_path / "ok")).returncode == 0
        markers.append((tmp_path / "ok").read_bytes())
    assert markers[0] == markers[1]
    path = write_params(tmp_path, lambda p: p["unet"].update(epoch=3))
    result = petseg("--params", str(path), "check", "--out", str(tmp_path / "ok"))
    assert result.returncode == 2 and "unet.epoch: unknown key" in result.stderr
    assert (tmp_path / "ok").read_bytes() == markers[0]


def test_help_is_whole_and_every_option_says_what_it_does():
    from petseg.cli import build_parser
    parser = build_parser()
    assert parser.description.endswith(".")
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict)).choices
    for name, sub in [("petseg", parser), *subparsers.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {'/'.join(action.option_strings) or action.dest}: no help text"
    assert "summary" in " ".join(petseg("--help").stdout.split())
