"""The ablation table from `dvc exp show --json`: grouping by step, means over seeds, the changed params."""

from __future__ import annotations

import pytest

from petseg.ablation import ablation_rows, ablation_table


def experiment(name: str, seed: int, epochs: int, dice: float, state: str = "success") -> dict:
    model = {"dice": dice, "dice_original_resolution": dice - 0.01}
    return {"name": name, "executor": {"state": state}, "revs": [{"name": name, "rev": f"rev-{name}", "error": None, "data": {
        "params": {"params.yaml": {"data": {"seed": seed, "unet": {"epochs": epochs}}}},
        "metrics": {"metrics/evaluate.json": {"data": {"unet": model, "resnet34_unet": model}},
                    "metrics/tune_unet.json": {"data": {"tune_seconds": 30.0}},
                    "metrics/train_unet.json": {"data": {"train_seconds": 90.0}}}}}]}


EXP_SHOW = [{"rev": "workspace", "experiments": None},
            {"rev": "abc", "experiments": [
                experiment("abl2-longer-s1", 1, 20, 0.84), experiment("abl1-base-s1", 1, 10, 0.70),
                experiment("abl1-base-s2", 2, 10, 0.80), experiment("abl2-longer-s2", 2, 20, 0.86),
                experiment("abl3-queued-s1", 1, 30, 0.99, state="queued"),
                experiment("not-an-ablation", 1, 10, 0.5)]}]


def test_rows_keep_finished_ablation_experiments_in_step_and_seed_order():
    rows = ablation_rows(EXP_SHOW)
    assert [(r["step"], r["label"], r["seed"]) for r in rows] == [(1, "base", 1), (1, "base", 2),
                                                                  (2, "longer", 1), (2, "longer", 2)]
    assert rows[0]["minutes"] == pytest.approx(2.0)  # (30 s tune + 90 s train) / 60
    assert rows[0]["params"] == {"seed": 1, "unet.epochs": 10}


def test_table_averages_seeds_and_names_the_change():
    lines = ablation_table(ablation_rows(EXP_SHOW)).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| 1 base | the baseline | 1, 2 | **0.7500** (0.7000; 0.8000) | 0.7400 |")
    assert lines[3].startswith("| 2 longer | `unet.epochs` 10 → 20 | 1, 2 | **0.8500** (0.8400; 0.8600) | 0.8400 |")
    assert lines[3].endswith("| 2.0 |")
