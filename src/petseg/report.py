"""The results table of the README, made from metrics/evaluate.json rather than typed by hand."""

from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
NAMES = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}


def results_table(evaluate: dict) -> str:
    lines = ["| model | test Dice | mean image Dice | IoU | pixel accuracy | test images | parameters | ms/image |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in evaluate.items():
        lines.append(f"| {NAMES.get(name, name)} | {r['dice']:.4f} | {r['mean_image_dice']:.4f} | {r['iou']:.4f} | "
                     f"{r['pixel_accuracy']:.4f} | {r['n_images']} | {r['parameters']:,} | "
                     f"{r['inference_ms_per_image']:.1f} |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> None:
    """Replace what stands between the results markers of `readme` with `table`."""
    text = Path(readme).read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no {START} ... {END} markers to put the table between")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    Path(readme).write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))
