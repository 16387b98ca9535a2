"""Interruptions: SIGKILL and resume, a killed tuning run, Ctrl-C, a diverging loss, foreign checkpoints."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from petseg.data.arrays import load_split
from petseg.models.build import build_model
from petseg.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from petseg.training.loop import fit
from tests.conftest import REPO, study_trials

EPOCHS = 6


@pytest.fixture(scope="module")
def processed(tiny_processed) -> Path:
    return tiny_processed


def make_project(root: Path, processed: Path, **changes) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(lr=2e-3)
    params["train"].update(batch_size=2)
    params["unet"].update(base_channels=4, epochs=EPOCHS)
    params["tune"].update(n_trials=3, epochs=2, startup_trials=1, heartbeat_seconds=1)
    for section, values in changes.items():
        params[section].update(values)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "data").mkdir(exist_ok=True)
    if not (root / "data" / "processed").exists():
        (root / "data" / "processed").symlink_to(processed)
    return root


def start(root: Path, *args, pause_in_epoch: int | None = None) -> subprocess.Popen:
    """`petseg ARGS` in `root`; with `pause_in_epoch` N, it stops after the first batch of the N-th training
    epoch it runs (counting across tuning trials), touches `root/paused` and waits there to be signalled.
    So a test interrupts it at a known point however fast the machine is."""
    command = ["-m", "petseg"] if pause_in_epoch is None else ["-c", PAUSED_RUN, str(pause_in_epoch)]
    return subprocess.Popen([sys.executable, *command, *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def default_sigint() -> None:
    """Ctrl-C as in a terminal: a suite started in the background of a script inherits SIGINT ignored, and
    Python then never turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


PAUSED_RUN = """
import itertools, sys, time
from pathlib import Path
import petseg.training.loop
from petseg.cli import main

pause_in, epochs = int(sys.argv[1]), itertools.count(1)
real_progress = petseg.training.loop.progress

def progress(iterable, desc, *args, **kwargs):
    if " epoch " not in desc or next(epochs) != pause_in:  # validation passes have no desc
        return real_progress(iterable, desc, *args, **kwargs)
    def first_batch_then_wait():
        for index, batch in enumerate(iterable):
            if index == 1:  # one optimizer step into the epoch
                Path("paused").touch()
                while True:
                    time.sleep(0.05)
            yield batch
    return first_batch_then_wait()

petseg.training.loop.progress = progress
sys.exit(main(sys.argv[2:]))
"""


def wait_for(condition, timeout=900.0):
    """Poll `condition`; the timeout only keeps a broken run from hanging the suite, it is not a speed check."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def outputs(root: Path) -> dict:
    ckpt = torch.load(root / "models/unet.pt", weights_only=True)
    metrics = json.loads((root / "metrics/train_unet.json").read_text())
    rows = (root / "plots/train_unet.csv").read_text().splitlines()
    return {"state": ckpt["state_dict"], "epoch": ckpt["epoch"], "metrics": metrics, "rows": rows}


def test_sigkill_mid_epoch_then_rerun_ends_exactly_like_an_uninterrupted_run(processed, tmp_path):
    straight = make_project(tmp_path / "straight", processed)
    assert start(straight, "train", "--model", "unet").wait(timeout=300) == 0

    killed = make_project(tmp_path / "killed", processed)
    resume = killed / "models/unet.resume.pt"
    proc = start(killed, "train", "--model", "unet", pause_in_epoch=2)
    wait_for((killed / "paused").exists)  # epoch 1 is done and saved: kill it in the middle of epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "models/unet.pt").exists()  # nothing that looks finished
    assert len(torch.load(resume, weights_only=True)["history"]) == 1
    rerun = start(killed, "train", "--model", "unet")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "resuming after epoch" in err
    assert not resume.exists()

    a, b = outputs(straight), outputs(killed)
    assert a["metrics"] == b["metrics"] and a["epoch"] == b["epoch"] and a["rows"] == b["rows"]
    for key in a["state"]:
        assert torch.equal(a["state"][key], b["state"][key]), key


def test_a_resume_state_from_other_settings_is_not_reused(processed, tmp_path):
    root = make_project(tmp_path / "p", processed, unet={"epochs": 2})
    assert start(root, "train", "--model", "unet").wait(timeout=300) == 0
    first = outputs(root)
    # a stale state of another run (other lr) sits where the resume state goes
    stale = make_project(tmp_path / "stale", processed, unet={"epochs": 3})
    proc = start(stale, "train", "--model", "unet", pause_in_epoch=2)
    wait_for((stale / "paused").exists)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (root / "models/unet.resume.pt").write_bytes((stale / "models/unet.resume.pt").read_bytes())
    _, err = start(root, "train", "--model", "unet").communicate(timeout=300)
    assert "resuming" not in err
    assert outputs(root)["metrics"] == first["metrics"]


def finished_trials(journal: Path) -> list[tuple]:
    return study_trials(journal, ("COMPLETE", "PRUNED"))


def test_killed_tuning_keeps_finished_trials_and_runs_only_the_missing(processed, tmp_path):
    root = make_project(tmp_path / "tune", processed, resnet34_unet={"decoder_channels": 8})
    db = root / "tune/study.journal"
    proc = start(root, "tune", pause_in_epoch=3)  # the first epoch of the second UNet trial (2 epochs a trial)
    wait_for((root / "paused").exists)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = finished_trials(db)
    assert len(before) == 1
    out, err = start(root, "tune").communicate(timeout=600)
    after = finished_trials(db)
    assert set(before) <= set(after)  # the finished trials are kept as they were
    per_study = {}
    for study, *_ in after:
        per_study[study] = per_study.get(study, 0) + 1
    assert sorted(per_study.values()) == [3, 3], (out, err)  # n_trials per model, none run twice
    for name in ("unet", "resnet34_unet"):
        assert json.loads((root / f"metrics/tune_{name}.json").read_text())["n_trials"] == 3


def test_ctrl_c_exits_promptly_and_leaves_no_finished_looking_output(processed, tmp_path):
    root = make_project(tmp_path / "int", processed)
    proc = start(root, "train", "--model", "unet", pause_in_epoch=2)
    wait_for((root / "paused").exists)
    assert (root / "models/unet.resume.pt").exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # prompt: it does not finish the epoch (which never ends here)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("petseg train: interrupted")
    for output in ("models/unet.pt", "metrics/train_unet.json", "plots/train_unet.csv"):
        assert not (root / output).exists(), output
    leftovers = [p.name for p in root.rglob(".*.tmp")]
    assert not leftovers


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_stage_puts_back_the_tracked_outputs_dvc_deleted(processed, tmp_path, signum):
    root = make_project(tmp_path / "tracked", processed)
    tracked = {"metrics/train_unet.json": '{"lr": 0.001}\n', "plots/train_unet.csv": "epoch\n1\n"}
    for path, text in tracked.items():
        (root / path).parent.mkdir(exist_ok=True)
        (root / path).write_text(text)
    (root / "notes.txt").write_text("mine\n")
    git(root, "init", "-q")
    git(root, "add", *tracked, "notes.txt")
    git(root, "commit", "-qm", "results")
    for path in [*tracked, "notes.txt"]:  # DVC deletes a stage's outputs before it runs it; the user deleted notes
        (root / path).unlink()
    proc = start(root, "train", "--model", "unet", pause_in_epoch=2)
    wait_for((root / "paused").exists)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "put back metrics/train_unet.json, plots/train_unet.csv as git's index has them" in err
    assert {path: (root / path).read_text() for path in tracked} == tracked  # byte for byte
    assert not (root / "notes.txt").exists()  # not an output of this stage: left as the user left it
    assert not (root / "models/unet.pt").exists()


def test_a_failing_stage_puts_back_its_tracked_outputs_too(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/tune_unet.json").write_text('{"best_lr": 0.001}\n')
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "results")
    (tmp_path / "metrics/tune_unet.json").unlink()
    result = subprocess.run([sys.executable, "-m", "petseg", "tune", "--model", "unet", "--data", "missing",
                             "--metrics", "metrics/tune_unet.json", "--plot", "plots/tune_unet.csv"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "missing" in result.stderr.splitlines()[-1]
    assert (tmp_path / "metrics/tune_unet.json").read_text() == '{"best_lr": 0.001}\n'
    assert not (tmp_path / "plots").exists()  # never tracked: nothing to put back


def test_a_diverging_loss_stops_training_naming_epoch_and_batch(processed, monkeypatch):
    from petseg.core.config import load_params
    params = load_params(REPO / "params.yaml")
    calls = {"n": 0}
    from petseg.training import losses

    original = losses.DiceBCELoss.forward

    def poisoned(self, logits, target):
        calls["n"] += 1
        loss = original(self, logits, target)
        return loss * float("nan") if calls["n"] == 8 else loss  # 6 training + 1 validation batch an epoch: epoch 2, batch 1

    monkeypatch.setattr(losses.DiceBCELoss, "forward", poisoned)
    train, valid = load_split(processed, "train"), load_split(processed, "valid")
    with pytest.raises(FloatingPointError, match=r"loss is nan in epoch 2, batch 1"):
        fit("unet", {"base_channels": 4}, train, valid, lr=1e-3, epochs=3, seed=0,
            train_params=params.train.model_copy(update={"batch_size": 2}), augment=params.augment)


def test_a_checkpoint_for_another_architecture_says_which_model_it_is(tmp_path):
    model = build_model("unet", {"base_channels": 4})
    save_checkpoint(tmp_path / "unet.pt", model.state_dict(), "unet", {"base_channels": 4}, 64)
    with pytest.raises(CheckpointError, match=r"is a unet checkpoint \(\{'base_channels': 4\}\), not resnet34_unet"):
        load_checkpoint(tmp_path / "unet.pt", expected_model="resnet34_unet")
    # metadata that lies about the weights: one line, not a wall of missing keys
    save_checkpoint(tmp_path / "lie.pt", model.state_dict(), "resnet34_unet", {"decoder_channels": 32}, 64)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "lie.pt")
    assert "weights do not fit the resnet34_unet" in str(err.value) and "\n" not in str(err.value)


def _default_action(signum: int) -> bool:
    return signal.getsignal(signum) == signal.SIG_DFL


def test_preprocess_pool_workers_end_on_sigterm_as_by_default_under_the_commands_handler():
    """A worker that kept the command's Python handler could miss Pool.terminate()'s SIGTERM when it landed just
    before the worker blocked on the task queue's lock, and preprocess then waited for it forever."""
    from multiprocessing import Pool

    from petseg.data.preprocess import _default_stop_signals
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # as petseg's command handler
    try:
        with Pool(1) as plain, Pool(1, _default_stop_signals) as workers:
            assert not plain.apply(_default_action, (signal.SIGTERM,))  # a fork inherits the handler
            assert workers.apply(_default_action, (signal.SIGTERM,)) and workers.apply(_default_action, (signal.SIGHUP,))
    finally:
        signal.signal(signal.SIGTERM, previous)
