"""The results table of the README, made from metrics/evaluate.json rather than typed by hand."""

from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"  # the default section's markers
NAMES = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}


def results_table(runs: dict[str, dict]) -> str:
    """One row per model of each run ({label: evaluate JSON}); a `run` column when there are labels."""
    labelled = any(runs)
    lines = [("| run " if labelled else "") + "| model | test Dice | 95% interval | Dice at original size | cats | dogs "
             "| mean image Dice | IoU | pixel accuracy | test images | parameters | ms/image |",
             ("| --- " if labelled else "") + "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, evaluate in runs.items():
        for name, r in evaluate.items():
            interval = f"{r['dice_ci_low']:.4f} to {r['dice_ci_high']:.4f}" if "dice_ci_low" in r else ""
            original, cats, dogs = (f"{r[key]:.4f}" if r.get(key) is not None else ""
                                    for key in ("dice_original_resolution", "dice_cat", "dice_dog"))
            lines.append((f"| {label} " if labelled else "")
                         + f"| {NAMES.get(name, name)} | {r['dice']:.4f} | {interval} | {original} | {cats} | {dogs} | "
                         f"{r['mean_image_dice']:.4f} | {r['iou']:.4f} | {r['pixel_accuracy']:.4f} | {r['n_images']} | "
                         f"{r['parameters']:,} | {r['inference_ms_per_image']:.1f} |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str, section: str = "results") -> None:
    """Replace what stands between the `section` markers of `readme` with `table`."""
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    text = Path(readme).read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme}: no {start} ... {end} markers to put the table between")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    Path(readme).write_text(pattern.sub(lambda _: f"{start}\n{table}\n{end}", text))
