"""The one params.yaml loader: reads, validates every key, and fails early with a one-line message."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

MODELS = ("unet", "resnet34_unet")


class ParamError(ValueError):
    """A bad value in params.yaml; the message names the key, the value and what is allowed.

    `source` is the file the value came from (params.yaml, a profile), when known.
    """

    def __init__(self, message: str, source: str | Path | None = None):
        super().__init__(message)
        self.source = source


@functools.cache
def _loader() -> type:
    """YAML 1.2, as DVC writes params.yaml: `1e-3` is a number and only true/false are booleans (PyYAML,
    following YAML 1.1, reads `1e-3` as a string and the `on` of `dvc exp run -S train.amp=on` as true).
    Built on first use: `petseg predict` with an ONNX model needs no PyYAML."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

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
    try:
        return yaml.load(Path(path).read_text(), Loader=_loader())
    except yaml.YAMLError as err:
        raise ParamError(f"not valid YAML ({str(err).splitlines()[0]})", path) from None


def _number(kind, low=None, high=None, low_open=False, high_open=False, nullable=False):
    def check(key: str, value: Any) -> None:
        if value is None and nullable:
            return
        ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            raise ParamError(f"{key}: {value!r} is not {'an integer' if kind is int else 'a number'}"
                             + (" or null" if nullable else ""))
        if low is not None and (value <= low if low_open else value < low):
            raise ParamError(f"{key}: {value!r} must be {'>' if low_open else '>='} {low}")
        if high is not None and (value >= high if high_open else value > high):
            raise ParamError(f"{key}: {value!r} must be {'<' if high_open else '<='} {high}")
    return check


def _choice(*allowed):
    def check(key, value):
        if value not in allowed:
            raise ParamError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
    return check


def _string(key, value):
    if not isinstance(value, str) or not value:
        raise ParamError(f"{key}: {value!r} must be a non-empty string")


def _multiple_of_32(key, value):
    _number(int, low=32)(key, value)
    if value % 32:
        raise ParamError(f"{key}: {value!r} must be a multiple of 32 (the models downsample 5 times)")


def _range(item_check):
    def check(key, value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ParamError(f"{key}: {value!r} must be a list [low, high]")
        for v in value:
            item_check(key, v)
        if value[0] > value[1]:
            raise ParamError(f"{key}: {value!r} must have low <= high")
    return check


def _archives(key, value):
    if not isinstance(value, dict) or set(value) != {"images.tar.gz", "annotations.tar.gz"}:
        raise ParamError(f"{key}: must map images.tar.gz and annotations.tar.gz to {{size, md5}}")
    for name, spec in value.items():
        if not isinstance(spec, dict) or set(spec) != {"size", "md5"}:
            raise ParamError(f"{key}.{name}: must be {{size: BYTES, md5: HEX}}, got {spec!r}")
        _number(int, low=0)(f"{key}.{name}.size", spec["size"])
        _string(f"{key}.{name}.md5", spec["md5"])


positive_int = _number(int, low=1)
positive = _number(float, low=0, low_open=True)
non_negative = _number(float, low=0)
probability = _number(float, low=0, high=1)

SCHEMA: dict[str, Any] = {
    "seed": _number(int, low=0),
    "lr": _number(float, low=0, low_open=True, nullable=True),
    "data": {
        "source": _choice("sample", "full", "folder"),
        "folder": _string,
        "url": _string,
        "retries": positive_int,
        "timeout": positive,
        "archives": {"sample": _archives, "full": _archives},
    },
    "preprocess": {
        "image_size": _multiple_of_32,
        "valid_fraction": _number(float, low=0, high=1, low_open=True, high_open=True),
        "on_bad_file": _choice("skip", "fail"),
        "min_side": positive_int,
        "max_pixels": positive_int,
        "num_workers": positive_int,
    },
    "augment": {
        "crop_scale": _range(_number(float, low=0, high=1, low_open=True)),
        "hflip_p": probability, "vflip_p": probability, "affine_p": probability,
        "shift": _number(float, low=0, high=1), "scale": _number(float, low=0, high=1, high_open=True),
        "rotate": _number(float, low=0, high=180),
        "color_jitter": _number(float, low=0, high=0.5), "color_jitter_p": probability,
        "rgb_shift": _number(float, low=0, high=255), "rgb_shift_p": probability,
        "noise_std": _range(_number(float, low=0, high=1)), "noise_p": probability,
    },
    "train": {
        "batch_size": positive_int,
        "dice_weight": non_negative, "bce_weight": non_negative,
        "scheduler": _choice("constant", "cosine", "onecycle"),
        "warmup_fraction": _number(float, low=0, high=1, high_open=True),
        "num_workers": _number(int, low=0),
        "persistent_workers": _choice(True, False),
        "channels_last": _choice(True, False),
        "fused_adam": _choice(True, False),
        "amp": _choice("auto", "on", "off"),
        "deterministic": _choice(True, False),
    },
    "unet": {"base_channels": positive_int, "epochs": positive_int},
    "resnet34_unet": {"decoder_channels": positive_int, "epochs": positive_int},
    "tune": {
        "n_trials": _number(int, low=0), "epochs": positive_int,
        "lr_min": positive, "lr_max": positive,
        "startup_trials": _number(int, low=0), "pruner_warmup_epochs": _number(int, low=0),
        "storage": _string, "heartbeat_seconds": positive_int,
    },
    "evaluate": {"threshold": _number(float, low=0, high=1, low_open=True, high_open=True),
                 "batch_size": positive_int, "tta_hflip": _choice(True, False), "bootstrap_samples": positive_int,
                 "confidence": _number(float, low=0, high=1, low_open=True, high_open=True)},
    "visualize": {"n_images": positive_int, "n_worst": _number(int, low=0)},
}


def validate(params: dict, schema: dict = SCHEMA, prefix: str = "") -> None:
    """Check every key against SCHEMA: no unknown keys, no missing keys, every value in range."""
    if not isinstance(params, dict):
        raise ParamError(f"{prefix.rstrip('.') or 'params.yaml'}: must be a mapping, got {params!r}")
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise ParamError(f"{prefix}{unknown[0]}: unknown key; allowed here: {', '.join(schema)}")
    for key, rule in schema.items():
        name = prefix + key
        if key not in params:
            raise ParamError(f"{name}: missing")
        if isinstance(rule, dict):
            validate(params[key], rule, name + ".")
        else:
            rule(name, params[key])
    if not prefix:
        tune = params["tune"]
        if tune["lr_min"] >= tune["lr_max"]:
            raise ParamError(f"tune.lr_min: {tune['lr_min']} must be < tune.lr_max ({tune['lr_max']})")
        if tune["n_trials"] == 0 and params["lr"] is None:
            raise ParamError("tune.n_trials: 0 (no tuning) needs a fixed learning rate: set lr, e.g. lr: 2.0e-3")
        if params["data"]["source"] == "folder" and not Path(params["data"]["folder"]).expanduser().is_dir():
            raise ParamError(f"data.folder: {params['data']['folder']!r} is no folder; with data.source folder it "
                             "must be a folder in the official layout (images/, annotations/trimaps/, list files)")
        if params["train"]["dice_weight"] + params["train"]["bce_weight"] <= 0:
            raise ParamError("train.dice_weight: dice_weight + bce_weight must be > 0")


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate params.yaml; raises ParamError naming the file or the key."""
    path = Path(path)
    if not path.is_file():
        raise ParamError("no such params file", path)
    params = read_yaml(path)
    try:
        validate(params)
    except ParamError as err:
        raise ParamError(str(err), path) from None
    return params


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


def profile_overrides(params: dict, profile_path: str | Path) -> list[str]:
    """`-S key=value` arguments that turn `params` into the profile; the merged params are validated first."""
    import yaml
    path = Path(profile_path)
    if not path.is_file():
        raise ParamError("no such profile", path)
    profile = read_yaml(path) or {}
    try:
        validate(merge(params, profile))  # an unknown key or a bad value, named as in params.yaml
    except ParamError as err:
        raise ParamError(str(err), path) from None
    args = []
    for key, value in flatten(profile).items():
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
        if any(c.isspace() for c in text.replace(", ", ",")):
            raise ParamError(f"{key}: {value!r} has spaces; give it in params.yaml instead", path)
        args += ["-S", f"{key}={text.replace(', ', ',')}"]
    return args
