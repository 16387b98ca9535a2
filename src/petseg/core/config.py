"""The one params.yaml loader: typed sections (pydantic), every key checked, one-line errors that name the key."""

from __future__ import annotations

import difflib
import functools
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from petseg.core.errors import ParamError, brief
from petseg.core.limits import (MAX_ARCHIVE_BYTES, MAX_BATCH_SIZE, MAX_IMAGE_SIZE, MAX_PARAMS_BYTES,
                                 MAX_PHOTO_PIXELS, MAX_YAML_DEPTH)
from petseg.models.spec import MODELS, STRIDE

MAX_WORKERS = 64  # data-loading processes: each holds a copy of the loader's state
MAX_EPOCHS = 100_000

Number = int | float  # as written in params.yaml: 15 stays 15, so fingerprints and model cards read as the file does
Probability = Annotated[Number, Field(ge=0, le=1)]
Fraction = Annotated[Number, Field(gt=0, lt=1)]


class Section(BaseModel):
    """A params.yaml section: every key required, none unknown, no string read as a number, no infinity or NaN,
    read-only. Every number has an upper bound too, so that a value that passes the check stage never crashes a
    stage later (an overflow, a model or an allocation beyond petseg.core.limits): far above any useful value."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True, allow_inf_nan=False)


class Archive(Section):
    size: int = Field(ge=0, le=MAX_ARCHIVE_BYTES)
    md5: str = Field(min_length=1)


class Archives(Section):
    images: Archive = Field(alias="images.tar.gz")
    annotations: Archive = Field(alias="annotations.tar.gz")


class ArchiveSources(Section):
    sample: Archives
    full: Archives


class Data(Section):
    source: Literal["sample", "full", "folder"]
    folder: str = Field(min_length=1)
    url: str = Field(min_length=1, pattern=r"^https?://\S+$")  # not file:// (a local file read as an archive)
    retries: int = Field(ge=1, le=100)
    timeout: Number = Field(gt=0, le=3600)
    archives: ArchiveSources


class Preprocess(Section):
    image_size: int = Field(ge=STRIDE, le=MAX_IMAGE_SIZE, multiple_of=STRIDE)
    valid_fraction: Fraction
    on_bad_file: Literal["skip", "fail"]
    min_side: int = Field(ge=1, le=100_000)
    max_pixels: int = Field(ge=1, le=MAX_PHOTO_PIXELS)
    num_workers: int = Field(ge=1, le=MAX_WORKERS)


def _low_high(value: list) -> list:
    if len(value) != 2:
        raise ValueError("must be a list [low, high]")
    if value[0] > value[1]:
        raise ValueError("must have low <= high")
    return value


class Augment(Section):
    crop_scale: list[Annotated[Number, Field(gt=0, le=1)]]
    hflip_p: Probability
    vflip_p: Probability
    affine_p: Probability
    shift: Probability
    scale: Number = Field(ge=0, lt=1)
    rotate: Number = Field(ge=0, le=180)
    color_jitter: Number = Field(ge=0, le=0.5)
    color_jitter_p: Probability
    rgb_shift: Number = Field(ge=0, le=255)
    rgb_shift_p: Probability
    noise_std: list[Probability]
    noise_p: Probability

    _ranges = field_validator("crop_scale", "noise_std")(_low_high)


ProgressiveSize = Annotated[int, Field(ge=STRIDE, le=MAX_IMAGE_SIZE, multiple_of=STRIDE)]


class Train(Section):
    batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE)
    dice_weight: Number = Field(ge=0, le=1000)
    bce_weight: Number = Field(ge=0, le=1000)
    scheduler: Literal["constant", "cosine", "onecycle"]
    warmup_fraction: Number = Field(ge=0, lt=1)
    num_workers: int = Field(ge=0, le=MAX_WORKERS)
    persistent_workers: bool
    channels_last: bool
    fused_adam: bool
    amp: Literal["auto", "on", "off"]
    deterministic: bool
    # progressive resizing: the first progressive_fraction of the epochs train on crops of this side, the rest
    # at preprocess.image_size (null: every epoch at image_size)
    progressive_size: ProgressiveSize | None
    progressive_fraction: Number = Field(ge=0, le=1)

    def small_epochs(self, epochs: int) -> int:
        """How many of `epochs` epochs, the first ones, train on progressive_size crops."""
        return 0 if self.progressive_size is None else int(epochs * self.progressive_fraction)


Rate = Annotated[Number, Field(gt=0, le=10)]
# a model's own learning rate, batch size and first crop size, where it trains better at another than the
# shared ones (null)
OwnRate = Rate | None
OwnBatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] | None
OwnProgressiveSize = ProgressiveSize | None
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]


class UNet(Section):
    base_channels: int = Field(ge=1, le=128)  # 124 million parameters: petseg.core.limits
    epochs: Epochs
    lr: OwnRate
    batch_size: OwnBatchSize
    progressive_size: OwnProgressiveSize

    def architecture(self) -> dict:
        """The keys that define the network (the rest is training): what a checkpoint records."""
        return {"base_channels": self.base_channels}


class ResNet34UNet(Section):
    decoder_channels: int = Field(ge=1, le=1024)  # 94 million parameters
    epochs: Epochs
    lr: OwnRate
    batch_size: OwnBatchSize
    progressive_size: OwnProgressiveSize

    def architecture(self) -> dict:
        return {"decoder_channels": self.decoder_channels}


class Tune(Section):
    n_trials: int = Field(ge=0, le=10_000)
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    lr_min: Number = Field(gt=0, le=10)
    lr_max: Number = Field(gt=0, le=10)
    startup_trials: int = Field(ge=0, le=10_000)
    pruner_warmup_epochs: int = Field(ge=0, le=MAX_EPOCHS)
    storage: str = Field(min_length=1)
    heartbeat_seconds: int = Field(ge=1, le=86_400)


class Evaluate(Section):
    threshold: Fraction
    batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE)
    tta_hflip: bool
    bootstrap_samples: int = Field(ge=1, le=100_000)
    confidence: Fraction


class Visualize(Section):
    n_images: int = Field(ge=1, le=64)  # rows of one figure
    n_worst: int = Field(ge=0, le=64)


class Params(Section):
    seed: int = Field(ge=0, le=2**32 - 1)  # numpy's and torch's seeds; a larger one overflows
    lr: Rate | None
    data: Data
    preprocess: Preprocess
    augment: Augment
    train: Train
    unet: UNet
    resnet34_unet: ResNet34UNet
    tune: Tune
    evaluate: Evaluate
    visualize: Visualize

    def model(self, name: str) -> UNet | ResNet34UNet:
        """The section of model `name` (a key of petseg.models.spec.MODELS)."""
        return getattr(self, name)

    def lr_for(self, name: str) -> Number | None:
        """Model `name`'s learning rate: its own, else the shared `lr` (None: the tune stage's)."""
        own = self.model(name).lr
        return self.lr if own is None else own

    def train_for(self, name: str) -> Train:
        """The train section as model `name` trains: with its own batch size and first crop size where set."""
        section = self.model(name)
        own = {key: value for key in ("batch_size", "progressive_size") if (value := getattr(section, key)) is not None}
        return self.train.model_copy(update=own) if own else self.train

    def as_dict(self) -> dict:
        """The params as params.yaml spells them."""
        return self.model_dump(by_alias=True)


# pydantic's error types, in params.yaml's words (ctx holds the bound)
BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
          "less_than": ("<", "lt")}


def _field(model: type[BaseModel], loc: tuple) -> tuple[str, Any, type[BaseModel] | None]:
    """For an error's location: the dotted key (without pydantic's union and list-index steps), the key's
    annotation, and the section the key is (None for a value)."""
    keys, annotation, current = [], None, model
    for step in loc:
        fields = {info.alias or name: info for name, info in current.model_fields.items()} if current else {}
        if step in fields:
            keys.append(step)
            annotation = fields[step].annotation
            current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return ".".join(keys), annotation, current


def _allowed(annotation) -> list:
    """The values a Literal or bool key takes."""
    if annotation is bool:
        return [True, False]
    return list(typing.get_args(annotation))


def _integer(annotation) -> bool:
    """An int key, also where it is Annotated with bounds or may be null."""
    members = typing.get_args(annotation) if type(None) in typing.get_args(annotation) else (annotation,)
    return any(m is int or (typing.get_origin(m) is Annotated and typing.get_args(m)[0] is int) for m in members)


def _message(model: type[BaseModel], error: dict, missing: set[tuple] = frozenset()) -> str:
    """One line for a pydantic error; `missing` (the locations of missing keys) lets an unknown key that is
    a misspelling of one of them say so."""
    key, annotation, _ = _field(model, error["loc"])
    kind, value, ctx = error["type"], error["input"], error.get("ctx", {})
    nullable = type(None) in typing.get_args(annotation)
    if kind == "missing":
        return f"{key}: missing"
    if kind == "extra_forbidden":
        parent, _, where = _field(model, error["loc"][:-1])
        allowed = [info.alias or name for name, info in where.model_fields.items()] if where else []
        prefix, hint = parent + "." if parent else "", ""
        for near in difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1, cutoff=0.8):
            hint = f" (did you mean {near}?{f' {prefix}{near} is missing' if (*error['loc'][:-1], near) in missing else ''})"
        return f"{prefix}{error['loc'][-1]}: unknown key{hint}; allowed here: {', '.join(allowed)}"
    if kind in BOUNDS:
        sign, name = BOUNDS[kind]
        return f"{key}: {value!r} must be {sign} {ctx[name]:g}"
    if kind == "finite_number":
        return f"{key}: {value!r} must be a finite number"
    if kind == "string_pattern_mismatch":
        return f"{key}: {value!r} must be an http:// or https:// address"
    if kind == "multiple_of":
        return f"{key}: {value!r} must be a multiple of {ctx['multiple_of']} (the models' stride)"
    if kind in ("literal_error", "bool_type"):
        return f"{key}: {value!r} is not one of {', '.join(map(str, _allowed(annotation)))}"
    if kind == "int_type" and _integer(annotation):
        return f"{key}: {value!r} is not an integer" + (" or null" if nullable else "")
    if kind in ("int_type", "float_type"):
        return f"{key}: {value!r} is not a number" + (" or null" if nullable else "")
    if kind in ("string_type", "string_too_short"):
        return f"{key}: {value!r} must be a non-empty string"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key}: must be a mapping, got {value!r}"
    if kind == "list_type":
        return f"{key}: {value!r} must be a list [low, high]"
    if kind == "value_error":
        return f"{key}: {value!r} {ctx['error']}"
    return f"{key}: {value!r}: {error['msg']}"


def _check_across_sections(p: Params) -> None:
    if p.tune.lr_min >= p.tune.lr_max:
        raise ParamError(f"tune.lr_min: {p.tune.lr_min} must be < tune.lr_max ({p.tune.lr_max})")
    untuned = [name for name in MODELS if p.lr_for(name) is None]
    if p.tune.n_trials == 0 and untuned:
        raise ParamError("tune.n_trials: 0 (no tuning) needs a fixed learning rate: set lr, e.g. lr: 2.0e-3 "
                         f"(or {untuned[0]}.lr)")
    if p.data.source == "folder" and not Path(p.data.folder).expanduser().is_dir():
        raise ParamError(f"data.folder: {p.data.folder!r} is no folder; with data.source folder it "
                         "must be a folder in the official layout (images/, annotations/trimaps/, list files)")
    for key in ["train", *MODELS]:
        small = getattr(p, key).progressive_size
        if small is not None and small >= p.preprocess.image_size:
            raise ParamError(f"{key}.progressive_size: {small} must be < preprocess.image_size "
                             f"({p.preprocess.image_size}), or null")
    if p.train.dice_weight + p.train.bce_weight <= 0:
        raise ParamError("train.dice_weight: dice_weight + bce_weight must be > 0")


def validate(raw: Any) -> Params:
    """Typed params from a parsed params.yaml; ParamError names the first bad key."""
    if not isinstance(raw, dict):
        sections = ", ".join(Params.model_fields)
        raise ParamError("empty: a params file is a mapping of " + sections if raw is None else
                         f"must be a mapping of {sections}; got {type(raw).__name__} {str(raw)[:40]!r}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        errors = err.errors()
        # a union's first error is its first member's: prefer "not finite" to "not an integer"; and an unknown
        # key to the missing one it misspells (`epocs` for `epochs`)
        error = next((e for e in errors if e["type"] == "finite_number"), None) or next(
            (e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
        raise ParamError(_message(Params, error, missing)) from None
    _check_across_sections(params)
    return params


@functools.cache
def _loader() -> type:
    """YAML 1.2, as DVC writes params.yaml: `1e-3` is a number and only true/false are booleans (PyYAML,
    following YAML 1.1, reads `1e-3` as a string and the `on` of `dvc exp run -S train.amp=on` as true).
    Built on first use: `petseg predict` with an ONNX model needs no PyYAML."""
    import yaml

    class Loader(yaml.SafeLoader):
        """Refuses what params never need and a parser would build without bound: aliases (`*name`, which can
        expand exponentially), nesting deeper than MAX_YAML_DEPTH, and a key given twice (which would win
        silently)."""
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not taken in params files",
                                                  self.peek_event().start_mark)
            if self.depth >= MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                                  self.peek_event().start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                            key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$"), list("-+0123456789."))
    return Loader


def read_yaml(path: Path) -> Any:
    """Parse a params or profile file; one line naming the file when it is not YAML."""
    import yaml
    path = Path(path)
    if path.stat().st_size > MAX_PARAMS_BYTES:
        raise ParamError(f"{path.stat().st_size} bytes; a params file is at most {MAX_PARAMS_BYTES}", path)
    try:
        return yaml.load(path.read_bytes().decode("utf-8"), Loader=_loader())
    except yaml.MarkedYAMLError as err:
        where = f" at line {err.problem_mark.line + 1}" if err.problem_mark else ""
        raise ParamError(f"not valid YAML ({err.problem or err.context}{where})", path) from None
    except yaml.YAMLError as err:
        raise ParamError(f"not valid YAML ({str(err).splitlines()[0]})", path) from None
    except UnicodeDecodeError as err:
        raise ParamError(f"not UTF-8 text ({err.reason} at byte {err.start})", path) from None
    except ValueError as err:  # an integer of thousands of digits (Python's int limit)
        raise ParamError(f"not valid YAML ({brief(err)})", path) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ParamError naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ParamError("not a regular file; a params file is YAML text" if path.exists() else
                         "no such params file", path)
    try:
        return validate(read_yaml(path))
    except ParamError as err:
        raise ParamError(str(err), path) from None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: the dotted keys that `dvc exp run -S` takes."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and not (prefix + key).startswith("data.archives"):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


def merge(base: dict, changes: dict) -> dict:
    """A copy of `base` with `changes` laid over it, section by section."""
    merged = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = merge(base[key], value) if nested else value
    return merged


def profile_overrides(params: Params, profile_path: str | Path) -> list[str]:
    """`-S key=value` arguments that turn `params` into the profile; the merged params are validated first."""
    import yaml
    path = Path(profile_path)
    if not path.is_file():
        raise ParamError("no such profile", path)
    profile = read_yaml(path) or {}
    try:
        validate(merge(params.as_dict(), profile))  # an unknown key or a bad value, named as in params.yaml
    except ParamError as err:
        raise ParamError(str(err), path) from None
    args = []
    for key, value in flatten(profile).items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
        if any(c.isspace() for c in text.replace(", ", ",")):
            raise ParamError(f"{key}: {value!r} has spaces; give it in params.yaml instead", path)
        args += ["-S", f"{key}={text.replace(', ', ',')}"]
    return args
