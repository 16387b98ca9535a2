"""`petseg compare`: experiments side by side, from the JSON of `dvc exp show --json`."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd

from tests.conftest import REPO


def revision(rev: str, name: str | None, lr: float, epochs: int, dice: float) -> dict:
    """A revision of `dvc exp show --json`; its outputs' hashes are md5-<rev>-<file> (see TIMINGS)."""
    params = {"seed": 42, "lr": lr, "unet": {"base_channels": 16, "epochs": epochs},
              "resnet34_unet": {"decoder_channels": 32, "epochs": 11}, "train": {"batch_size": 8}}
    evaluate = {"unet": {"dice": dice, "dice_ci_low": dice - 0.01, "dice_ci_high": dice + 0.01},
                "resnet34_unet": {"dice": dice - 0.04, "dice_ci_low": dice - 0.05, "dice_ci_high": dice - 0.03}}
    metrics = {"metrics/evaluate.json": {"data": evaluate}}
    outs = {path: {"hash": f"md5-{rev[:4]}-{path}", "use_cache": path.endswith(".pt")}
            for model in ("unet", "resnet34_unet") for path in (f"models/{model}.pt", f"plots/tune_{model}.csv")}
    return {"rev": rev, "name": name, "data": {"rev": rev, "params": {"params.yaml": {"data": params}},
                                               "metrics": metrics, "outs": outs}, "error": None, "experiments": None}


SHOWN = [revision("workspace", None, 0.001, 22, 0.8469),
         dict(revision("c5f5f491e3acc7117e8798b0d6a1fd3f7f2c39f3", "main", 0.001, 22, 0.8469),
              experiments=[{"revs": [revision("0bd6b3e5d53a", "lr-3e-4-with-a-long-name", 0.0003, 22, 0.8123),
                                     revision("1ce7f4e5d53a", "epochs-40", 0.001, 40, 0.8612)],
                            "name": "x"}])]


# The timings log: every run but epochs-40 (made in another clone) was timed here; 60 s of tuning, 600 s of
# training each (the UNet of lr-3e-4 took 1200 s). A line cut by a full disk is skipped.
TIMINGS = [{"md5": f"md5-{rev}-plots/tune_{m}.csv", "seconds": 60.0} for rev in ("work", "c5f5", "0bd6")
           for m in ("unet", "resnet34_unet")] + \
          [{"md5": f"md5-{rev}-models/{m}.pt", "seconds": 600.0} for rev in ("work", "c5f5", "0bd6")
           for m in ("unet", "resnet34_unet")] + [{"md5": "md5-0bd6-models/unet.pt", "seconds": 1200.0}]


def compare(tmp_path, *args) -> subprocess.CompletedProcess:
    path, log = tmp_path / "show.json", tmp_path / "timings.jsonl"
    path.write_text(json.dumps(SHOWN))
    log.write_text("".join(json.dumps(entry) + "\n" for entry in TIMINGS) + '{"md5": "md5-1ce7-mod')
    return subprocess.run([sys.executable, "-m", "petseg", "compare", "--json", str(path), "--timings", str(log),
                           *args], cwd=REPO, capture_output=True, text=True)


def test_the_text_fits_80_columns_with_dice_intervals_epochs_minutes_and_changed_params(tmp_path):
    result = compare(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert lines[0].split()[:4] == ["run", "UNet", "ResNet34-UNet", "epochs"]
    rows = {line.split()[0]: line for line in lines[2:] if not line.startswith("  ")}
    assert set(rows) == {"workspace", "main", "lr-3e-4-with-a", "epochs-40"}  # the name cut to its column
    assert "0.8469 (0.837-0.857)" in rows["main"] and "0.8069 (0.797-0.817)" in rows["main"]
    assert rows["main"].split()[-2:] == ["22/11", "10/10"]  # epochs; training minutes, per model
    assert rows["epochs-40"].split()[-2:] == ["40/11", "-/-"]  # no timings recorded
    changed = lines[lines.index(rows["epochs-40"]) + 1]
    assert changed.split() == ["lr=0.001", "unet.epochs=40"]  # only the params that differ, every run
    assert "batch_size" not in result.stdout and "seed" not in result.stdout
    assert result.stderr.strip().endswith("s)") and "4 runs compared" in result.stderr


def test_markdown_and_csv_hold_the_same_numbers(tmp_path):
    markdown = compare(tmp_path, "--format", "markdown").stdout.splitlines()
    assert markdown[0] == "| run | UNet | ResNet34-UNet | epochs | train min | changed |"
    # the log's later line for a hash wins: 1200 s for this UNet
    assert "| lr-3e-4-with-a-long-name | 0.8123 (0.802-0.822) | 0.7723 (0.762-0.782) | 22/11 | 20/10 |" in markdown[4]
    frame = pd.read_csv(io.StringIO(compare(tmp_path, "--format", "csv").stdout))
    assert list(frame["run"]) == ["workspace", "main", "lr-3e-4-with-a-long-name", "epochs-40"]
    assert list(frame["unet dice"]) == [0.8469, 0.8469, 0.8123, 0.8612]
    assert {"lr", "unet.epochs"} <= set(frame.columns) and "seed" not in frame.columns


def test_minutes_under_ten_keep_one_decimal():
    from petseg.tools.compare import summary
    row = {"run": "r"}
    for model, minutes in (("unet", 2.84), ("resnet34_unet", 16.2)):
        row |= {f"{model} dice": 0.8, f"{model} low": 0.7, f"{model} high": 0.9, f"{model} epochs": 3,
                f"{model} minutes": minutes}
    assert summary(pd.DataFrame([row]))[0]["train min"] == "2.8/16"


def test_a_per_model_key_set_on_one_run_shows_against_null_on_the_others(tmp_path):
    shown = json.loads(json.dumps(SHOWN))
    own_lr = shown[1]["experiments"][0]["revs"][1]  # epochs-40, now also at its own UNet rate
    own_lr["data"]["params"]["params.yaml"]["data"]["unet"]["lr"] = 0.003
    for rev in (shown[0], shown[1]):  # null on the workspace and main; lr-3e-4's revision predates the key
        rev["data"]["params"]["params.yaml"]["data"]["unet"]["lr"] = None
    path = tmp_path / "show.json"
    path.write_text(json.dumps(shown))
    result = subprocess.run([sys.executable, "-m", "petseg", "compare", "--json", str(path), "--timings",
                             str(tmp_path / "none.jsonl")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    changed = {lines[i - 1].split()[0]: line.split() for i, line in enumerate(lines) if line.startswith("  ")}
    assert changed["epochs-40"] == ["lr=0.001", "unet.epochs=40", "unet.lr=0.003"]
    assert changed["main"] == ["lr=0.001", "unet.epochs=22", "unet.lr=null"]
    assert changed["lr-3e-4-with-a"] == ["lr=0.0003", "unet.epochs=22", "unet.lr=null"]
