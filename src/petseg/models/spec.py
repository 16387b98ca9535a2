"""What every part of petseg agrees on about the models, at no import cost: their names, where the pipeline
keeps their files, the input stride and the input normalisation."""

from __future__ import annotations

from pathlib import Path

from petseg.core.errors import PetsegError
from petseg.core.limits import MAX_IMAGE_SIZE  # noqa: F401 (the largest training size a model file may name)

# params.yaml section (and file stem: models/NAME.pt, plots/train_NAME.csv) -> the name people read.
# Every list of models in petseg is this one; dvc.yaml's train stage is checked against it by a test.
MODELS = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}
STRIDE = 32  # both models downsample 5 times: an input's height and width are multiples of 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the photos are normalised with these, by the loop, evaluate and ONNX
IMAGENET_STD = (0.229, 0.224, 0.225)


def display_name(name: str) -> str:
    """`UNet` for `unet`; an unknown name as it is."""
    return MODELS.get(name, name)


# Where the pipeline keeps each model's files (dvc.yaml names the same paths in its cmds; a test checks):
# what a command writes or reads when it is run by hand without the path.
PATHS = {"checkpoint": "models/{name}.pt", "tuned": "metrics/tune_{name}.json", "trials": "plots/tune_{name}.csv",
         "trained": "metrics/train_{name}.json", "history": "plots/train_{name}.csv",
         "per_image": "plots/test_dice_{name}.csv"}


def model_path(kind: str, name: str) -> Path:
    """The pipeline's path of one of a model's files: model_path("checkpoint", "unet") is models/unet.pt."""
    return Path(PATHS[kind].format(name=name))


def default_checkpoints() -> list[Path]:
    """models/NAME.pt of every model."""
    return [model_path("checkpoint", name) for name in MODELS]


def check_image_size(size, path: Path) -> int:
    """A model file's training size: a multiple of STRIDE up to MAX_IMAGE_SIZE, or a one-line error."""
    if isinstance(size, bool) or not isinstance(size, int) or not STRIDE <= size <= MAX_IMAGE_SIZE or size % STRIDE:
        raise PetsegError(f"{path}: records image_size {size!r}; petseg takes a multiple of {STRIDE} from "
                          f"{STRIDE} to {MAX_IMAGE_SIZE}")
    return size
