"""Pictures: a grid of test photos (varied breeds, each model's worst) with true and predicted masks, and the training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from petseg.core.io import atomic_path  # noqa: E402
from petseg.core.metrics import confusion_per_image, dice_score, to_confusion  # noqa: E402
from petseg.inference.images import overlay  # noqa: E402
from petseg.models.spec import display_name  # noqa: E402


def choose_photos(per_image: dict[str, list[dict]], n_varied: int, n_worst: int, seed: int,
                  not_worst: set[str] = frozenset()) -> list[tuple[str, str]]:
    """The grid's rows as (stem, label): one photo per breed for up to `n_varied` breeds (seeded draws),
    then each model's `n_worst` photos of lowest Dice not already shown and not in `not_worst`.

    `per_image` maps each model to its rows of test_dice_MODEL.csv (stem, dice, breed, species).
    """
    rng = np.random.default_rng(seed)
    first = next(iter(per_image.values()))
    pets = {row["stem"]: (row["breed"], row["species"]) for row in first}
    species_of = {breed: species for breed, species in pets.values()}
    breeds = sorted(species_of, key=lambda breed: (species_of[breed], breed.lower()))
    if len(breeds) > n_varied:
        keep = set(rng.choice(len(breeds), n_varied, replace=False).tolist())
        breeds = [breed for i, breed in enumerate(breeds) if i in keep]
    rows = []
    for breed in breeds:
        stems = sorted(stem for stem, (b, _) in pets.items() if b == breed)
        stem = stems[int(rng.integers(len(stems)))]
        rows.append((stem, f"{breed} ({pets[stem][1]})"))
    for model, table in per_image.items():
        skip = {stem for stem, _ in rows} | not_worst
        worst = [row for row in sorted(table, key=lambda r: (float(r["dice"]), r["stem"])) if row["stem"] not in skip]
        rows += [(row["stem"], f"{display_name(model)}'s worst #{rank}\n{row['breed']} ({row['species']})")
                 for rank, row in enumerate(worst[:n_worst], start=1)]
    return rows


def prediction_grid(images: np.ndarray, truth: np.ndarray, predictions: dict[str, np.ndarray],
                    labels: list[str], stems: list[str], path: Path) -> None:
    """One row per photo: the photo (its label and stem beside it), the true mask and each model's mask over
    it, each model's tile titled with its Dice on that photo."""
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.3 * columns + 1.2, 2.5 * len(images)), squeeze=False)
    for row, (image, mask) in enumerate(zip(images, truth)):
        tiles = [(image, stems[row]), (overlay(image, mask), "truth")]
        for model, masks in predictions.items():
            dice = dice_score(to_confusion(confusion_per_image(torch.from_numpy(masks[row])[None],
                                                               torch.from_numpy(mask)[None] > 0)))
            tiles.append((overlay(image, masks[row]), f"{display_name(model)}: Dice {dice:.3f}"))
        for col, (tile, title) in enumerate(tiles):
            ax = axes[row][col]
            ax.imshow(tile, interpolation="bilinear")
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(labels[row], fontsize=11, fontweight="bold")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def plot_curves(histories: dict[str, list[dict]], path: Path) -> None:
    """Loss (top, log scale: an early validation loss can be 20 times the rest) and Dice (bottom), train and
    valid per epoch, one column per model on shared y axes (so the models compare at a glance), whole epochs."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
    fig, axes = plt.subplots(2, len(histories), figsize=(5 * len(histories), 7), squeeze=False, sharey="row")
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
            ax.set(title=f"{display_name(name)}: {'Dice' if metric == 'dice' else metric}", xlabel="epoch",
                   ylabel=label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlim(0.5, max(epochs) + 0.5)  # whole epochs on the axis even for a 1-epoch run
            ax.grid(alpha=0.3, which="both")
            ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight", pad_inches=0.15, metadata={"Software": None})
    plt.close(fig)
