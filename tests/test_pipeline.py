"""End to end: the real `dvc repro`, `dvc exp run`, metrics and plots on a tiny subset, in a temporary copy."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from petseg.core.timings import read_timings
from petseg.tools.plots_template import write_template
from tests.conftest import REPO, TINY_TEST

pytestmark = pytest.mark.slow

TINY = {
    "preprocess": {"image_size": 64},
    "train": {"batch_size": 4, "progressive_size": 32},  # the UNet's first epoch on 32 px crops
    "unet": {"base_channels": 4, "epochs": 2},
    "resnet34_unet": {"decoder_channels": 8, "epochs": 1},
    "tune": {"n_trials": 2, "epochs": 1, "startup_trials": 1},
    "evaluate": {"batch_size": 8},
    "visualize": {"n_images": 2},
}


def run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def make_project(root: Path, tiny_archives) -> Path:
    """A git repo with this project's pipeline, the tiny archives as its sample and tiny params."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")  # the vega templates
    shutil.copy(REPO / ".dvc" / ".gitignore", root / ".dvc" / ".gitignore")
    if not (root / ".dvc" / "plots" / "offline.html").exists():
        write_template(root / ".dvc" / "plots" / "offline.html")
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")  # no remote: a clone trains its own models
    shutil.copytree(tiny_archives[0], root / "data" / "sample")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["data"]["archives"]["sample"] = tiny_archives[1]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        run(cmd, root)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_archives) -> Path:
    return make_project(tmp_path_factory.mktemp("project"), tiny_archives)


def test_repro_trains_both_models_and_writes_metrics(project):
    output = run(["dvc", "repro"], project)
    assert stages_run(output) == {"check", "download", "preprocess", "tune@unet", "tune@resnet34_unet", "train@unet",
                                  "train@resnet34_unet", "evaluate", "visualize", "export"}
    metrics = json.loads((project / "metrics" / "evaluate.json").read_text())
    assert set(metrics) == {"unet", "resnet34_unet"}
    for result in metrics.values():
        assert result["n_images"] == len(TINY_TEST)
        assert 0 <= result["dice"] <= 1 and 0 <= result["iou"] <= result["dice"]
        assert result["parameters"] > 0 and "inference_ms_per_image" not in result  # a time: in the log
        assert result["dice_ci_low"] <= result["dice"] <= result["dice_ci_high"]
        assert 0 <= result["dice_original_resolution"] <= 1
        assert 0 <= result["dice_cat"] <= 1 and 0 <= result["dice_dog"] <= 1
        assert 0 <= result["reference_dice"] <= 1 and 0 <= result["boundary_iou"] <= 1
        assert result["n_skipped"] == 0 and result["skipped"] == []
    for name in ("unet", "resnet34_unet"):
        with open(project / "plots" / f"test_breeds_{name}.csv", newline="") as f:
            breeds = list(csv.DictReader(f))
        assert [(b["breed"], b["species"], b["n_images"]) for b in breeds] == [
            ("Abyssinian", "cat", "4"), ("american_bulldog", "dog", "2")]  # the tiny test split
    for name in ("unet", "resnet34_unet"):
        tuned = json.loads((project / "metrics" / f"tune_{name}.json").read_text())
        assert tuned["n_trials"] == 2 and "tune_seconds" not in tuned
        trained = json.loads((project / "metrics" / f"train_{name}.json").read_text())
        assert trained["lr"] == tuned["best_lr"]  # lr: null -> the tuned rate
        rows = (project / "plots" / f"train_{name}.csv").read_text().splitlines()
        assert rows[0] == "epoch,train_loss,valid_loss,train_dice,valid_dice,lr"
        assert len(rows) == 1 + TINY[name]["epochs"]
    assert (project / "plots" / "predictions.png").read_bytes().startswith(b"\x89PNG")
    assert (project / "plots" / "curves.png").read_bytes().startswith(b"\x89PNG")
    for name in ("unet", "resnet34_unet"):
        assert (project / "models" / f"{name}.onnx").stat().st_size > 1000
        card = (project / "models" / f"{name}.md").read_text()
        assert f"| Dice (pixels of all test photos pooled) | {metrics[name]['dice']:.4f} |" in card
    # the times went to the git-ignored log, each under the hash of the output it made (as dvc.lock gives it)
    timed = read_timings(project / "logs" / "timings.jsonl")
    lock = {out["path"]: out["md5"] for stage in yaml.safe_load((project / "dvc.lock").read_text())["stages"].values()
            for out in stage.get("outs", [])}
    for name in ("unet", "resnet34_unet"):
        trained, tuned = timed[lock[f"models/{name}.pt"]], timed[lock[f"plots/tune_{name}.csv"]]
        assert (trained["stage"], trained["model"], tuned["stage"]) == ("train", name, "tune")
        assert len(trained["epoch_seconds"]) == TINY[name]["epochs"] and trained["seconds"] > 0 < tuned["seconds"]
    assert set(timed[lock["metrics/evaluate.json"]]["ms_per_image"]) == {"unet", "resnet34_unet"}
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], project)
    assert run(["git", "status", "--porcelain", "--ignored=matching", "logs"], project) == "!! logs/\n"


def test_second_repro_runs_nothing(project):
    assert stages_run(run(["dvc", "repro"], project)) == set()


def test_an_epochs_change_reruns_that_training_and_no_tuning(project):
    original = (project / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["unet"]["epochs"] += 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = set(json.loads(run(["dvc", "status", "--json"], project)))
        assert changed == {"check", "train@unet"}, changed  # no tuning, not the other model
        # the study a tune run would open is the same one: its finished trials count
        from petseg.core.config import validate
        from petseg.stages.tune import tune_fingerprint
        before = tune_fingerprint(validate(yaml.safe_load(original)), "unet", project / "data" / "processed")
        assert tune_fingerprint(validate(params), "unet", project / "data" / "processed") == before
    finally:
        (project / "params.yaml").write_text(original)


def changed_stages(project: Path) -> set[str]:
    """The stages `dvc status` finds changed deps in: what `dvc repro` would rerun first."""
    status = json.loads(run(["dvc", "status", "--json"], project))
    return {stage for stage, changes in status.items()
            if any(isinstance(c, dict) and "changed deps" in c for c in changes)}


TRAINING = {"tune@unet", "tune@resnet34_unet", "train@unet", "train@resnet34_unet"}
INFERENCE = {"evaluate", "visualize", "export"}


@pytest.mark.parametrize("edited, reruns", [
    ("src/petseg/inference/card.py", {"export"}),
    ("src/petseg/inference/figures.py", {"visualize"}),
    ("src/petseg/inference/photos.py", set()),  # predict's code: no stage runs it
    ("src/petseg/tools/report.py", set()),
    ("src/petseg/training/loop.py", TRAINING),
    ("src/petseg/models/resnet34_unet.py", {"tune@resnet34_unet", "train@resnet34_unet"} | INFERENCE),
    ("src/petseg/inference/settings.py", {"evaluate", "visualize", "export"}),
])
def test_a_code_edit_reruns_the_stages_that_run_that_code(project, edited, reruns):
    path = project / edited
    original = path.read_text()
    assert changed_stages(project) == set()
    path.write_text(original + "\n# an edit\n")
    try:
        assert changed_stages(project) == reruns
    finally:
        path.write_text(original)


@pytest.mark.parametrize("key, value", [("threshold", 0.4), ("tta_hflip", False)])
def test_an_evaluate_setting_reruns_evaluate_visualize_and_export_and_no_training(project, key, value):
    original = (project / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["evaluate"][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert changed_stages(project) == {"check"} | INFERENCE  # check: a valid change, the same marker
    finally:
        (project / "params.yaml").write_text(original)


MODEL_FILES = ["models/unet.pt", "models/resnet34_unet.pt", "models/unet.onnx", "models/resnet34_unet.onnx"]


def test_models_travel_through_a_dvc_remote(project, tmp_path):
    """docs/models.md: a remote the user owns, `dvc push` here, `dvc pull` in another clone; and the
    artifacts of dvc.yaml, by name."""
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "storage")], project)
    run(["git", "add", ".dvc/config"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "shared remote"], project)
    try:
        run(["dvc", "push"], project)
        run(["git", "clone", "-q", str(project), "clone"], tmp_path)
        run(["dvc", "pull", *MODEL_FILES], tmp_path / "clone")
        for path in MODEL_FILES:
            assert (tmp_path / "clone" / path).read_bytes() == (project / path).read_bytes(), path
        assert {"unet.onnx", "resnet34_unet.pt", "unet.md"} <= set(run(["dvc", "ls", str(project), "models"],
                                                                        tmp_path).split())
        # a version of an artifact is an annotated git tag NAME@vX.Y.Z (GTO's format; `gto register` makes them)
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "unet-onnx@v0.1.0", "-m", "UNet ONNX"],
            project)
        run(["dvc", "artifacts", "get", str(project), "unet-onnx", "-o", "got.onnx"], tmp_path)
        assert (tmp_path / "got.onnx").read_bytes() == (project / "models" / "unet.onnx").read_bytes()
    finally:
        subprocess.run(["git", "tag", "-d", "unet-onnx@v0.1.0"], cwd=project, capture_output=True)
        run(["git", "reset", "-q", "--hard", "HEAD~1"], project)  # the default remote as before


def tracked_outputs(root: Path) -> dict[str, str]:
    """md5 of every file of every output that dvc.lock records, and of dvc.lock and params.yaml."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    paths = [root / "dvc.lock"] + [root / out["path"] for entry in lock.values() for out in entry.get("outs", [])]
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [p])]
    return {str(f.relative_to(root)): hashlib.md5(f.read_bytes()).hexdigest() if f.exists() else "missing"
            for f in files if not f.is_dir()}


@pytest.mark.parametrize("change, message", [
    ("lr=-1", "lr: -1 must be > 0"),
    ("+unet.epoch=3", "unet.epoch: unknown key"),
    ("preprocess.image_size=100", "preprocess.image_size: 100 must be a multiple of 32"),
])
def test_a_failed_exp_run_loses_no_output(project, change, message):
    before = tracked_outputs(project)
    assert len(before) > 20 and "missing" not in before.values()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["dvc", "exp", "run", "-S", change], cwd=project, env=env, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert stages_run(result.stdout + result.stderr) == {"check"}  # it stopped at the first stage
    assert tracked_outputs(project) == before  # every output of every stage, byte for byte
    run(["git", "checkout", "params.yaml"], project)  # the README's way back to a clean workspace
    assert stages_run(run(["dvc", "repro"], project)) == set()


def test_a_fresh_clone_retrains_to_the_same_bytes_and_a_clean_git_status(project, tmp_path):
    """A clone has no DVC cache: `dvc repro` runs every stage again, and on the same machine every output,
    ONNX models included, comes out byte for byte as committed, so git has nothing to show."""
    baseline = run(["git", "rev-list", "-n1", "--grep", "^baseline$", "HEAD"], project).strip()
    run(["git", "clone", "-q", str(project), str(tmp_path / "clone")], tmp_path)
    clone = tmp_path / "clone"
    run(["git", "checkout", "-q", baseline], clone)
    # the stages whose outputs live in DVC's cache run again; evaluate and visualize do not, because the
    # checkpoints came out with the hashes dvc.lock names
    assert stages_run(run(["dvc", "repro"], clone)) == {"download", "preprocess", "train@unet",
                                                         "train@resnet34_unet", "export"}
    assert run(["git", "status", "--porcelain"], clone) == ""
    assert (clone / "dvc.lock").read_bytes() == run_git_show(project, baseline, "dvc.lock")


def lock_mismatches(root: Path) -> list[str]:
    """dvc.lock's stages that dvc.yaml no longer has, and its `cache: false` outputs whose file differs."""
    from tests.test_stage_deps import uncached_lock_mismatches
    return uncached_lock_mismatches(root)


def run_git_show(root: Path, rev: str, path: str) -> bytes:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, check=True).stdout


def test_evaluate_scores_an_outside_folder_like_the_pipeline(project, tiny_raw):
    output = run(["petseg", "evaluate", "--checkpoint", "models/unet.pt", "--folder", str(tiny_raw),
                  "--list", "test.txt"], project)
    printed = json.loads(output[:output.rindex("}") + 1])
    pipeline = json.loads((project / "metrics" / "evaluate.json").read_text())["unet"]
    for key in ("dice", "mean_image_dice", "iou", "pixel_accuracy", "n_images", "dice_ci_low", "dice_ci_high",
                "dice_original_resolution"):
        assert printed["unet"][key] == pipeline[key], key


def test_evaluate_scores_the_validation_split_as_training_did(project, tmp_path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["tta_hflip"] = False  # training validates without TTA
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    output = run(["petseg", "--params", str(tmp_path / "params.yaml"), "evaluate", "--checkpoint", "models/unet.pt",
                  "--split", "valid"], project)
    printed = json.loads(output[:output.rindex("}") + 1])["unet"]
    assert printed["n_images"] == json.loads((project / "metrics" / "preprocess.json").read_text())["valid"]
    test = json.loads((project / "metrics" / "evaluate.json").read_text())["unet"]
    assert printed["n_images"] != test["n_images"] and 0 <= printed["dice"] <= 1


def test_changing_one_model_reruns_only_that_model(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["unet"]["base_channels"] = 6
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = stages_run(run(["dvc", "repro"], project))
    assert {"train@unet", "evaluate", "visualize"} <= ran
    assert "train@resnet34_unet" not in ran
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project))
    assert "metrics/evaluate.json" in diff
    run(["git", "checkout", "--", "params.yaml"], project)
    run(["dvc", "checkout", "-q"], project)


def test_exp_run_with_lr_and_exp_show(project):
    run(["dvc", "exp", "run", "-S", "lr=1e-3"], project)
    table = json.loads(run(["dvc", "exp", "show", "--json"], project))
    experiments = [exp for rev in table for exp in (rev.get("experiments") or [])]
    assert experiments, table
    data = experiments[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["lr"] == 1e-3
    dice = data["metrics"]["metrics/evaluate.json"]["data"]
    assert 0 <= dice["unet"]["dice"] <= 1 and 0 <= dice["resnet34_unet"]["dice"] <= 1
    trained = json.loads((project / "metrics" / "train_unet.json").read_text())
    assert trained["lr"] == 1e-3


def test_a_model_at_its_own_lr_and_batch_size_retrains_alone(project):
    ran = stages_run(run(["dvc", "exp", "run", "-S", "resnet34_unet.lr=3e-3", "-S", "resnet34_unet.batch_size=2"],
                         project))
    assert {"tune@resnet34_unet", "train@resnet34_unet", "evaluate", "export"} <= ran  # trials train at its batch
    assert not ran & {"tune@unet", "train@unet"}, ran
    assert json.loads((project / "metrics" / "train_resnet34_unet.json").read_text())["lr"] == 3e-3
    own = (project / "models" / "resnet34_unet.md").read_text()
    assert "- Learning rate 0.003 (set in params.yaml), onecycle schedule, batch 2, " in own
    shared = (project / "models" / "unet.md").read_text()
    assert f", onecycle schedule, batch {TINY['train']['batch_size']}, " in shared
    run(["git", "checkout", "--", "params.yaml"], project)
    run(["dvc", "checkout", "-q"], project)


def test_plots_show_renders_every_plot(project):
    run(["dvc", "plots", "show", "-o", "dvc_plots"], project)
    html = (project / "dvc_plots" / "index.html").read_text()
    for title in ("Loss per epoch", "Dice per epoch", "Tuning trials", "Per-image test Dice", "Test Dice per breed",
                  "predictions.png", "curves.png"):
        assert title in html, title
    assert "valid_dice" in html and "train_loss" in html
    assert not re.search(r"<script[^>]+src=", html)  # the vega bundle is inline: no CDN, no network


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("PETSEG_REQUIRE_BROWSER"):
        pytest.fail("chromium is required here (PETSEG_REQUIRE_BROWSER): run `make browser`")
    return found


def readable_plots(dom: str) -> None:
    """One colour per model, named axes, whole legends, whole trial numbers, markers for a 1-epoch run."""
    svgs = "".join(re.findall(r"<svg.*?</svg>", dom, re.S))
    assert "\u2026" not in svgs  # no label or legend entry cut short with an ellipsis
    assert dom.count("legend titled 'model'") >= 4 and "Y-axis titled 'y'" not in dom
    assert dom.count("legend titled 'revision: model'") >= 2  # the curves: a colour per revision and model
    assert "legend titled 'outcome'" in dom and "pruned (1)" not in dom  # completed or pruned, not 0 or 1
    assert "Y-axis titled 'loss (Dice + BCE, log scale)' for a log scale" in dom
    trial_labels = re.search(r"X-axis titled 'trial'.*?role-axis-label[^>]*>(.*?)</g>", dom, re.S).group(1)
    ticks = re.findall(r">([^<>]+)</text>", trial_labels)
    assert ticks and all(t.isdigit() for t in ticks), ticks
    loss = dom[dom.index('<div id="Loss_per_epoch"'):dom.index('<div id="Dice_per_epoch"')]
    assert re.search(r'aria-label="epoch: 1; [^"]*ResNet34-UNet', loss)  # its one epoch is a point


def test_plots_draw_offline_in_a_real_browser(project, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium: `make browser` installs Debian's for this test")
    run(["dvc", "plots", "diff", "HEAD", "-o", "dvc_plots"], project)  # workspace against the baseline
    page = project / "dvc_plots" / "index.html"
    plot_ids = re.findall(r"vegaEmbed\('#([^']+)'", page.read_text())
    assert len(plot_ids) == 6, plot_ids
    artifacts = Path(os.environ.get("PETSEG_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    netlog = tmp_path / "netlog.json"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", f"--log-net-log={netlog}",
             "--host-resolver-rules=MAP * ~NOTFOUND"]  # nothing can leave the machine, whatever is asked
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    subprocess.run([browser, *flags, "--window-size=1300,2400", f"--screenshot={artifacts / 'plots.png'}",
                    page.as_uri()], capture_output=True, timeout=120)
    starts = sorted((dom.index(f'<div id="{pid}"'), pid) for pid in plot_ids)
    for (start, pid), (end, _) in zip(starts, starts[1:] + [(len(dom), None)]):
        section = dom[start:end]
        assert "<svg" in section, f"{pid}: nothing drawn"
        assert re.search(r'class="mark-(line|symbol|rect)', section), f"{pid}: no marks"
    assert (artifacts / "plots.png").read_bytes().startswith(b"\x89PNG")
    readable_plots(dom)
    # the page asked for nothing on the network; Chromium's own update/account pings are not the page's
    hosts = set(re.findall(r'"url":"https?://([^/"]+)', netlog.read_text()))
    browser_own = {h for h in hosts if h.endswith((".google.com", ".googleapis.com", ".gvt1.com"))}
    assert hosts == browser_own, f"the page requested {hosts - browser_own}"


def test_queued_experiments_run_in_parallel_and_apply(project):
    run(["dvc", "exp", "run", "--queue", "-S", "lr=1e-4,3e-4,1e-3"], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + 600
    while True:
        status = run(["dvc", "queue", "status"], project)
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") >= 3, status
    table = json.loads(run(["dvc", "exp", "show", "--json"], project))
    runs = {}
    for rev in table:
        for exp in rev.get("experiments") or []:
            data = exp["revs"][0]["data"]
            lr = data["params"]["params.yaml"]["data"]["lr"]
            runs[lr] = (exp["name"], data["metrics"]["metrics/evaluate.json"]["data"])
    assert {1e-4, 3e-4, 1e-3} <= set(runs), runs
    for name, metrics in runs.values():
        assert 0 <= metrics["unet"]["dice"] <= 1 and 0 <= metrics["resnet34_unet"]["dice"] <= 1
    header = run(["dvc", "exp", "show", "--only-changed", "--csv"], project).splitlines()[0].split(",")
    assert "params.yaml:lr" in header and "unet.dice" in header, header
    compared = subprocess.run([sys.executable, "-m", "petseg", "compare"], cwd=project, capture_output=True, text=True,
                              env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    assert compared.returncode == 0, compared.stderr  # make compare: the runs in 80 columns
    lines = compared.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and lines[0].split()[:3] == ["run", "UNet", "ResNet34-UNet"], compared.stdout
    for name, _ in runs.values():
        assert any(line.startswith(name[:14]) for line in lines), (name, compared.stdout)
    assert {"lr=0.0001", "lr=0.0003", "lr=0.001"} <= set(compared.stdout.split()), compared.stdout
    for line in lines[2:]:  # the queued runs' times reached this project's log from their temporary copies
        if line.split()[0] in {name[:14] for name, _ in runs.values()}:
            assert "-/-" not in line, compared.stdout
    run(["dvc", "exp", "apply", runs[3e-4][0]], project)
    assert yaml.safe_load((project / "params.yaml").read_text())["lr"] == 3e-4
    assert "lr" in run(["dvc", "params", "diff"], project)
    assert "metrics/evaluate.json" in run(["dvc", "metrics", "diff", "HEAD"], project)
    # the applied experiment is whole: DVC sees nothing to do, and every file git tracks for DVC is the one
    # dvc.lock names, so `git add -A && git commit` records a consistent run
    assert "up to date" in run(["dvc", "status"], project)
    assert lock_mismatches(project) == []


def test_a_local_folder_source_is_tracked_by_dvc(tmp_path, tiny_archives, tiny_raw):
    """data.source folder: the pipeline reads the copy, reruns when it changes and only then."""
    root = make_project(tmp_path / "project", tiny_archives)
    pets = shutil.copytree(tiny_raw, tmp_path / "pets")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(source="folder", folder=str(pets))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run(run(["dvc", "repro", "preprocess"], root)) == {"check", "download", "preprocess"}
    assert (root / "data/raw/images/Abyssinian_1.jpg").read_bytes() == (pets / "images/Abyssinian_1.jpg").read_bytes()
    assert stages_run(run(["dvc", "repro", "preprocess"], root)) == set()
    (pets / "annotations" / "test.txt").write_text(
        "".join(f"{stem} 1 1 1\n" for stem in TINY_TEST[:-1]))  # one test photo fewer
    assert stages_run(run(["dvc", "repro", "preprocess"], root)) == {"download", "preprocess"}  # check: unchanged
    assert json.loads((root / "metrics/preprocess.json").read_text())["test"] == len(TINY_TEST) - 1


def test_an_experiment_travels_through_a_git_remote_and_a_dvc_remote(project, postgres, tmp_path, tiny_archives,
                                                                      monkeypatch):
    """docs/scaling.md: machine A runs an experiment (its study on PostgreSQL, the password in PGPASSWORD only)
    and pushes it; machine B pulls it, sees its Dice and gets byte-identical models. No file or log holds the
    password."""
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    url = postgres.create_database("travel")
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    logs = [run(["git", "init", "-q", "--bare", str(origin)], tmp_path)]
    a = make_project(tmp_path / "a", tiny_archives)
    # the cache of this module's project: the stages its repro ran with these params come back from the run cache
    logs.append(run(["dvc", "cache", "dir", "--local", str(project / ".dvc" / "cache")], a))
    for cmd in (["dvc", "remote", "add", "-d", "shared", str(storage)], ["git", "add", ".dvc/config"],
                git + ["commit", "-qm", "shared remote"], ["git", "remote", "add", "origin", str(origin)],
                ["git", "push", "-q", "origin", "HEAD:refs/heads/main"],
                ["dvc", "exp", "run", "-n", "travel", "-S", f"tune.storage='{url}'", "-S", "unet.base_channels=8"],
                ["dvc", "exp", "push", "origin", "travel"], ["dvc", "push"]):
        logs.append(run(cmd, a))
    assert "tune@unet" in stages_run(logs[-3]) and "preprocess" not in stages_run(logs[-3])  # (run cache)

    b = tmp_path / "b"
    logs.append(run(["git", "clone", "-q", "-b", "main", str(origin), str(b)], tmp_path))
    logs.append(run(["dvc", "exp", "pull", "origin", "travel"], b))
    table = run(["dvc", "exp", "show", "--json"], b)
    logs.append(table)
    experiments = {exp["name"]: exp["revs"][0]["data"] for rev in json.loads(table)
                   for exp in (rev.get("experiments") or [])}
    assert "travel" in experiments, table
    data = experiments["travel"]
    assert data["params"]["params.yaml"]["data"]["tune"]["storage"] == url
    dice = {name: m["dice"] for name, m in data["metrics"]["metrics/evaluate.json"]["data"].items()}
    assert dice == {name: m["dice"] for name, m in json.loads((a / "metrics/evaluate.json").read_text()).items()}
    logs.append(run(["dvc", "exp", "apply", "travel"], b))
    logs.append(run(["dvc", "pull"], b))
    for path in MODEL_FILES + ["metrics/evaluate.json", "dvc.lock"]:
        assert (b / path).read_bytes() == (a / path).read_bytes(), path
    assert json.loads((b / "metrics/tune_unet.json").read_text())["n_trials"] == TINY["tune"]["n_trials"]

    cache = project / ".dvc" / "cache"  # A's cache
    files = [p for root in (a, b, storage, cache) for p in root.rglob("*") if p.is_file()]
    assert {a / "params.yaml", a / "dvc.lock", b / "params.yaml", b / "dvc.lock", b / "metrics/tune_unet.json"} <= set(files)
    assert not [p for p in files if postgres.password.encode() in p.read_bytes()]
    assert not [log for log in logs if postgres.password in log]
