"""Output that pipes: stdout carries only a command's product (JSON, Markdown, arguments); the summary line
and progress go to stderr. Each command's stdout goes through a parser."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys

import yaml

from petseg.core.timings import file_md5
from petseg.models.build import build_model
from petseg.models.checkpoint import save_checkpoint
from petseg.tools import report
from tests.conftest import REPO


def petseg(*args, cwd):
    return subprocess.run([sys.executable, "-m", "petseg", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def summary(result, command: str) -> str:
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"petseg {command}: ") and last.endswith(" s)"), last
    return last


def test_evaluate_prints_only_json_and_runs_outside_a_project(tiny_raw, tmp_path):
    checkpoint = tmp_path / "unet.pt"
    save_checkpoint(checkpoint, build_model("unet", {"base_channels": 4}).state_dict(), "unet",
                    {"base_channels": 4}, 64)
    result = petseg("evaluate", "--checkpoint", checkpoint, "--folder", tiny_raw, "--list", "test.txt", cwd=tmp_path)
    assert "Dice" in summary(result, "evaluate")
    scores = json.loads(result.stdout)  # what `| python -m json.tool` needs
    assert scores["unet"]["n_images"] == 6 and 0 <= scores["unet"]["dice"] <= 1
    # no params.yaml here: the same fields as in a project, with the defaults params.yaml ships with
    assert scores["unet"]["dice_ci_low"] <= scores["unet"]["dice"] <= scores["unet"]["dice_ci_high"]
    assert "as params.yaml ships them" in result.stderr


def markdown_table(text: str) -> list[dict]:
    lines = text.strip().splitlines()
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines), text
    rows = [[cell.strip() for cell in line[1:-1].split("|")] for line in lines]
    assert all(cell == "---" for cell in rows[1]) and all(len(row) == len(rows[0]) for row in rows)
    return [dict(zip(rows[0], row)) for row in rows[2:]]


def test_report_prints_only_the_markdown_table(tmp_path):
    result = petseg("report", "--metrics", REPO / "metrics" / "evaluate.json", cwd=tmp_path)
    summary(result, "report")
    table = markdown_table(result.stdout)
    metrics = json.loads((REPO / "metrics" / "evaluate.json").read_text())
    assert [row["test Dice"] for row in table] == [f"{m['dice']:.4f}" for m in metrics.values()]


def test_report_finds_a_kept_runs_minutes_and_cpu_by_its_dvc_lock_and_log(tmp_path):
    """A run kept under runs/NAME/ has no checkpoints: the table finds its training entry by the checkpoint's
    md5 in the run's dvc.lock, in the log the run carries (NAME/logs/timings.jsonl)."""
    run = tmp_path / "runs" / "equal"
    (run / "metrics").mkdir(parents=True)
    (run / "logs").mkdir()
    evaluate = run / "metrics" / "evaluate.json"
    evaluate.write_text(json.dumps({"unet": {"dice": 0.9, "n_images": 10}}))
    (run / "metrics" / "train_unet.json").write_text(json.dumps({"epochs": 10}))
    (run / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train@unet": {"outs": [
        {"path": "models/unet.pt", "hash": "md5", "md5": "0" * 32, "size": 5}]}}}))
    entries = [{"md5": "0" * 32, "stage": "train", "seconds": 1500.0, "cpu": "AMD EPYC (AVX2)", "device": "cpu",
                "precision": "fp32"},
               {"md5": file_md5(evaluate), "stage": "evaluate", "ms_per_image": {"unet": 12.34}}]
    (run / "logs" / "timings.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    result = petseg("report", "--metrics", "equal=runs/equal/metrics/evaluate.json", "--timings", "none.jsonl",
                    cwd=tmp_path)
    summary(result, "report")
    [row] = markdown_table(result.stdout)
    assert (row["run"], row["epochs"], row["train min"], row["ms/image"], row["trained on"]) == (
        "equal", "10", "25.0", "12.3", "AMD EPYC (AVX2), fp32")
    (run / "logs" / "timings.jsonl").unlink()  # another clone's run: blank, not an error
    [row] = markdown_table(petseg("report", "--metrics", evaluate, cwd=tmp_path).stdout)
    assert (row["epochs"], row["train min"], row["trained on"]) == ("10", "", "")
    (run / "dvc.lock").write_text("stages: [unclosed")  # a damaged lock: one line naming it
    result = petseg("report", "--metrics", evaluate, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{run / 'dvc.lock'}: not a readable dvc.lock" in result.stderr


def documented_report_commands():
    """(document, parsed arguments) of each `petseg report ... --readme DOC` quoted in the README and docs/."""
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for command in re.findall(r"`(petseg report [^`]*--readme [^`]*)`", doc.read_text()):
            args = parser.parse_args(shlex.split(command)[2:])
            assert (REPO / args.readme).resolve() == doc.resolve(), command
            yield doc, args


def test_results_tables_are_what_report_makes_of_the_kept_runs():
    """Each results table in the README and docs holds, row for row, what its quoted command makes of the run
    records under runs/: no figure typed by hand. (The `default` rows are the workspace's own run, timed by a
    git-ignored log, and change with a user's `dvc repro`, so they are left out here.)"""
    commands = list(documented_report_commands())
    assert commands and any(doc.name == "README.md" for doc, _ in commands)
    for doc, args in commands:
        kept = [m for m in args.metrics if m.partition("=")[2].startswith("runs/")]
        made = petseg("report", *[a for m in kept for a in ("--metrics", m)], "--timings", "none.jsonl", cwd=REPO)
        summary(made, "report")
        start, end = report.markers(args.section)
        committed = doc.read_text().split(start)[1].split(end)[0]
        labels = {m.partition("=")[0] for m in kept}
        rows = [row for row in markdown_table(committed) if row["run"] in labels]
        assert rows == markdown_table(made.stdout), f"{doc.name} {args.section}: rerun its `petseg report` command"


def test_profile_prints_only_arguments(tmp_path):
    result = petseg("profile", REPO / "profiles" / "full.yaml", cwd=REPO)
    summary(result, "profile")
    args = shlex.split(result.stdout)
    assert args[::2] == ["-S"] * (len(args) // 2) and all("=" in a for a in args[1::2])


def test_stages_print_nothing_on_stdout(tiny_raw, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["preprocess"].update(image_size=64, num_workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = petseg("preprocess", "--raw", tiny_raw, "--out", "out", "--counts", "counts.json", cwd=tmp_path)
    assert "wrote out" in summary(result, "preprocess")
    assert result.stdout == ""
    result = petseg("check", "--out", "params.ok", cwd=tmp_path)
    summary(result, "check")
    assert result.stdout == ""


def test_make_sample_prints_only_the_checksums_json(tiny_raw, tmp_path):
    result = petseg("make-sample", "--src", tiny_raw, "--out", "sample", "--max-side", "48", cwd=tmp_path)
    summary(result, "make-sample")
    checksums = json.loads(result.stdout)
    assert set(checksums) == {"images.tar.gz", "annotations.tar.gz"}



def test_a_reader_that_stops_early_gets_no_error():
    """`petseg report | head -1`: the table meets a pipe already closed (here before the first write, so the
    test does not depend on timing), and petseg says nothing of it."""
    import os
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run([sys.executable, "-m", "petseg", "report"], cwd=REPO, stdout=write_end,
                            stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""


def test_the_plot_templates_name_the_models_as_petseg_does():
    """The vega templates turn file names into the names people read; they match petseg.models.spec.MODELS."""
    from petseg.models.spec import MODELS
    for template in (REPO / ".dvc" / "plots").glob("*.json"):
        steps = {step["as"]: step["calculate"] for step in json.loads(template.read_text())["transform"]}
        for name, shown in MODELS.items():
            assert f"datum.stem == '{name}' ? '{shown}'" in steps["model"], template.name
