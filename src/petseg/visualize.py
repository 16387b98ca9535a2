"""Pictures: a grid of test photos with true and predicted masks, and the training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from petseg.io import atomic_path  # noqa: E402

OVERLAY = (255, 40, 40)  # mask colour over the photo
ALPHA = 0.45
HEADER = 18  # pixels above each column for its title


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Tint the mask's pixels of a uint8 (H, W, 3) photo."""
    out = image.astype(np.float32)
    tint = mask.astype(bool)
    out[tint] = (1 - ALPHA) * out[tint] + ALPHA * np.array(OVERLAY, np.float32)
    return out.round().astype(np.uint8)


def prediction_grid(images: np.ndarray, columns: dict[str, np.ndarray]) -> Image.Image:
    """One row per photo: the photo, then each named mask (truth, models) over it."""
    n, size = len(images), images.shape[1]
    titles = ["photo", *columns]
    grid = Image.new("RGB", (len(titles) * size, HEADER + n * size), "white")
    draw = ImageDraw.Draw(grid)
    for col, title in enumerate(titles):
        draw.text((col * size + 4, 3), title, fill="black")
    for row in range(n):
        tiles = [images[row]] + [overlay(images[row], masks[row]) for masks in columns.values()]
        for col, tile in enumerate(tiles):
            grid.paste(Image.fromarray(tile), (col * size, HEADER + row * size))
    return grid


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def plot_curves(histories: dict[str, list[dict]], path: Path) -> None:
    """Loss (top, log scale: an early validation loss can be 20 times the rest) and Dice (bottom), train and
    valid per epoch, one column per model, whole epochs on the axis."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
    fig, axes = plt.subplots(2, len(histories), figsize=(5 * len(histories), 7), squeeze=False)
    for col, (name, rows) in enumerate(histories.items()):
        epochs = [int(r["epoch"]) for r in rows]
        for row, (metric, label) in enumerate((("loss", "loss (Dice + BCE, log scale)"), ("dice", "Dice"))):
            ax = axes[row][col]
            for part in ("train", "valid"):
                ax.plot(epochs, [r[f"{part}_{metric}"] for r in rows], marker="o", markersize=4, label=part)
            if metric == "loss":
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 3, 5)))
                ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))  # 0.3, not 3 x 10^-1
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set(title=f"{name}: {metric}", xlabel="epoch", ylabel=label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3, which="both")
            ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight", pad_inches=0.15, metadata={"Software": None})
    plt.close(fig)
