"""dvc.yaml against the code: every stage depends on every petseg file it can run, and names its paths in its cmd."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from petseg.cli import STAGES
from petseg.lib.config import Params
from petseg.lib.models import MODELS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PIPELINE = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
MODULE_NAME = re.compile(r"^petseg(\.\w+)+$")


def module_file(name: str) -> Path | None:
    """src/petseg/a/b.py or src/petseg/a/b/__init__.py for `petseg.a.b`; None for a name that is no module."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """The petseg modules a file imports, at its top or inside functions, and those it names for importlib."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from petseg.lib import io`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            names.add(node.value)  # importlib.import_module("petseg.lib.models.unet")
    return {name for name in names if name.split(".")[0] == "petseg"}


def runs_code(path: Path) -> bool:
    """False for a package's __init__.py that is a docstring and nothing else."""
    body = ast.parse(path.read_text()).body
    return not (path.name == "__init__.py" and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                                                   for n in body))


def files_run_by(module: str) -> set[Path]:
    """Every petseg file that importing `module` can load: its imports, theirs, and their packages."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages above a module run first
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo += imported_modules(path)
    return {path for path in seen if runs_code(path)}


def command_of(stage: dict) -> str:
    words = shlex.split(stage["cmd"])
    assert words[0] == "petseg", stage["cmd"]
    return next(word for word in words[1:] if not word.startswith("-"))


def uncovered(stage: dict) -> list[str]:
    """The files the stage's command can run that none of its deps (a file or a folder above it) covers."""
    deps = [REPO / dep for dep in stage["deps"] if "${" not in dep]
    files = files_run_by("petseg.cli") | files_run_by(f"petseg.stages.{command_of(stage)}")
    return sorted(str(f.relative_to(REPO)) for f in files if not any(f == d or d in f.parents for d in deps))


@pytest.mark.parametrize("name", PIPELINE)
def test_a_stage_depends_on_every_file_it_runs(name):
    stage = PIPELINE[name]
    assert command_of(stage) in STAGES, f"{name}: runs a tool, not a stage module"
    assert uncovered(stage) == [], f"{name}: dvc.yaml deps miss code the stage runs"


def test_the_check_finds_a_missing_library():
    """The check itself: without the library folder the train stage misses the training loop and the models."""
    stage = dict(PIPELINE["train_unet"])
    stage["deps"] = [dep for dep in stage["deps"] if dep != "src/petseg/lib"]
    missing = uncovered(stage)
    assert "src/petseg/lib/loop.py" in missing and "src/petseg/lib/models/unet.py" in missing
    assert "src/petseg/stages/evaluate.py" not in missing  # only what train can run


@pytest.mark.parametrize("name", PIPELINE)
def test_a_stage_names_its_outputs_in_its_cmd(name):
    """As in DVC's examples: the cmd says where each output goes (the file, or the folder it is written to)."""
    stage = PIPELINE[name]
    words = set(shlex.split(stage["cmd"]))
    for out in [*stage.get("outs", []), *stage.get("metrics", [])]:
        path = Path(next(iter(out)) if isinstance(out, dict) else out)
        assert str(path) in words or str(path.parent) in words, f"{name}: {path} is not in its cmd"


def test_the_models_are_listed_once():
    """petseg.lib.models.MODELS is the list: a train stage and a params section for each, nothing else."""
    trained = {name.removeprefix("train_") for name in PIPELINE if name.startswith("train_")}
    assert trained == set(MODELS)
    sections = {name for name, field in Params.model_fields.items() if hasattr(field.annotation, "architecture")}
    assert sections == set(MODELS)
