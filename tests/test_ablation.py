"""The ablation table from `dvc exp show --json`: grouping by step, means over seeds, the changed params."""

from __future__ import annotations

import pytest

from petseg.tools.ablation import ablation_rows, ablation_table


def experiment(name: str, seed: int, epochs: int, dice: float, state: str = "success", valid: float | None = None) -> dict:
    """An experiment whose models both score `dice` on test and `valid` (default: dice + 0.05) on validation."""
    model = {"dice": dice, "dice_original_resolution": dice - 0.01}
    trained = {"best_valid_dice": dice + 0.05 if valid is None else valid}
    return {"name": name, "executor": {"state": state}, "revs": [{"name": name, "rev": f"rev-{name}", "error": None, "data": {
        "params": {"params.yaml": {"data": {"seed": seed, "unet": {"epochs": epochs}}}},
        "metrics": {"metrics/evaluate.json": {"data": {"unet": model, "resnet34_unet": model}},
                    "metrics/train_unet.json": {"data": trained},
                    "metrics/train_resnet34_unet.json": {"data": trained}},
        "outs": {path: {"hash": f"{name}:{path}"} for path in OUTS}}}]}


OUTS = ["plots/tune_unet.csv", "models/unet.pt", "plots/tune_resnet34_unet.csv", "models/resnet34_unet.pt"]


def timings(name: str, seconds=(30.0, 90.0, 0.0, 0.0)) -> dict:
    """The timings log's entries of one experiment's outputs: by default 30 s of UNet tuning and 90 s of training."""
    return {f"{name}:{path}": {"seconds": s} for path, s in zip(OUTS, seconds)}


TIMINGS = timings("abl1-base-s1") | timings("abl1-base-s2") | timings("abl2-longer-s1")  # abl2-longer-s2: untimed


EXP_SHOW = [{"rev": "workspace", "experiments": None},
            {"rev": "abc", "experiments": [
                experiment("abl2-longer-s1", 1, 20, 0.84), experiment("abl1-base-s1", 1, 10, 0.70),
                experiment("abl1-base-s2", 2, 10, 0.80), experiment("abl2-longer-s2", 2, 20, 0.86),
                experiment("abl3-queued-s1", 1, 30, 0.99, state="queued"),
                experiment("not-an-ablation", 1, 10, 0.5)]}]


def test_rows_keep_finished_ablation_experiments_in_step_and_seed_order():
    rows = ablation_rows(EXP_SHOW, TIMINGS)
    assert [(r["step"], r["label"], r["seed"]) for r in rows] == [(1, "base", 1), (1, "base", 2),
                                                                  (2, "longer", 1), (2, "longer", 2)]
    assert rows[0]["minutes"] == pytest.approx(2.0)  # (30 s tune + 90 s train) / 60
    assert rows[3]["minutes"] is None  # a run the log has no times of (made in another clone)
    assert rows[0]["params"] == {"seed": 1, "unet.epochs": 10}


def test_table_averages_validation_dice_over_seeds_and_names_the_change():
    lines = ablation_table(ablation_rows(EXP_SHOW, TIMINGS)).splitlines()
    assert len(lines) == 6
    assert lines[2] == "| 1 base | the baseline | 1, 2 | **0.8000** (0.7500; 0.8500) | **0.8000** (0.7500; 0.8500) | 2.0 |"
    assert lines[3].startswith("| 2 longer (chosen) | `unet.epochs` 10 → 20 | 1, 2 | **0.9000** (0.8900; 0.9100) |")
    # test Dice only for the step chosen on validation
    assert lines[5] == ("Test Dice of the chosen step 2 (longer), mean over seeds 1, 2: UNet 0.8500 (at original size "
                        "0.8400); ResNet34-UNet 0.8500 (at original size 0.8400).")


def test_the_step_is_chosen_on_validation_even_when_another_scores_higher_on_test():
    exp_show = [{"rev": "abc", "experiments": [
        experiment("abl1-base-s1", 1, 10, dice=0.90, valid=0.70), experiment("abl2-longer-s1", 1, 20, dice=0.80, valid=0.75)]}]
    table = ablation_table(ablation_rows(exp_show, {}))
    assert "| 2 longer (chosen) |" in table and "step 2 (longer)" in table and "0.9000" not in table
