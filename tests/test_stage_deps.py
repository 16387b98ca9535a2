"""dvc.yaml against the code: each stage depends on exactly the petseg files it can run (no fewer: a change
must rerun it; no more: a change elsewhere must not), and names its paths in its cmd."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from petseg.cli import STAGES
from petseg.core.config import Params
from petseg.models.spec import MODELS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
MODULE_NAME = re.compile(r"^petseg(\.\w+)+$")


def pipeline() -> dict[str, object]:
    """The stages as DVC resolves them (foreach expanded: `train@unet`), by name."""
    from dvc.repo import Repo
    with Repo(str(REPO)) as repo:
        return {stage.addressing: stage for stage in repo.index.stages}


PIPELINE = pipeline()


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
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from petseg.inference import settings`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            names.add(node.value)  # importlib.import_module("petseg.models.unet")
    return {name for name in names if name.split(".")[0] == "petseg"}


def runs_code(path: Path) -> bool:
    """False for a package's __init__.py that is a docstring and nothing else."""
    body = ast.parse(path.read_text()).body
    return not (path.name == "__init__.py" and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                                                   for n in body))


def files_run_by(module: str, skip: frozenset[str] = frozenset()) -> set[Path]:
    """Every petseg file that importing `module` can load: its imports, theirs, and their packages (not the
    modules in `skip`)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in skip:
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages above a module run first
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo += imported_modules(path)
    return {path for path in seen if runs_code(path)}


def command_of(cmd: str) -> str:
    words = shlex.split(cmd)
    assert words[0] == "petseg", cmd
    return next(word for word in words[1:] if not word.startswith("-"))


def model_of(cmd: str) -> str | None:
    """The model a stage's cmd names (`--model unet`), if it names one."""
    words = shlex.split(cmd)
    return words[words.index("--model") + 1] if "--model" in words else None


def files_run_by_command(command: str, model: str | None = None) -> set[Path]:
    """What `petseg COMMAND` can run; with a model, the other models' networks are not among it (the model
    is built by name: `petseg.models.build.CLASSES`)."""
    from petseg.models.build import CLASSES
    skip = frozenset(module for name, (module, _) in CLASSES.items() if model is not None and name != model)
    return files_run_by("petseg.cli", skip) | files_run_by(f"petseg.stages.{command}", skip)


def code_deps(deps: list[str]) -> set[Path]:
    """The code files a stage's deps name: files under src/, and every code file of a folder under src/."""
    files = set()
    for dep in map(Path, deps):
        path = dep if dep.is_absolute() else REPO / dep
        if SRC in path.parents and path.is_dir():
            files |= {f for f in path.rglob("*.py") if "__pycache__" not in f.parts and runs_code(f)}
        elif SRC in path.parents:
            files.add(path)
    return files


def relative(paths: set[Path]) -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in paths)


@pytest.mark.parametrize("name", PIPELINE)
def test_a_stage_depends_on_exactly_the_files_it_runs(name):
    stage = PIPELINE[name]
    command = command_of(stage.cmd)
    assert command in STAGES, f"{name}: runs a tool, not a stage module"
    deps, runs = code_deps([d.def_path for d in stage.deps]), files_run_by_command(command, model_of(stage.cmd))
    assert relative(runs - deps) == [], f"{name}: dvc.yaml deps miss code the stage runs"
    assert relative(deps - runs) == [], f"{name}: dvc.yaml deps name code the stage never runs"


def test_the_check_finds_a_missing_and_a_needless_dependency():
    """The check itself: without the loop the train stage misses it; with the model card it depends on too much."""
    deps = [d.def_path for d in PIPELINE["train@unet"].deps]
    runs = files_run_by_command("train", "unet")
    assert SRC / "petseg/models/unet.py" in runs and SRC / "petseg/models/resnet34_unet.py" not in runs
    loop = SRC / "petseg/training/loop.py"
    assert loop in runs and loop in code_deps(deps)
    assert loop not in code_deps([d for d in deps if d != "src/petseg/training/loop.py"])
    card = SRC / "petseg/inference/card.py"
    assert card not in runs and card in code_deps(deps + ["src/petseg/inference"])


@pytest.mark.parametrize("name", PIPELINE)
def test_a_stage_names_its_outputs_in_its_cmd(name):
    """As in DVC's examples: the cmd says where each output goes (the file, or the folder it is written to)."""
    stage = PIPELINE[name]
    words = set(shlex.split(stage.cmd))
    for out in stage.outs:
        path = Path(out.def_path)
        assert str(path) in words or str(path.parent) in words, f"{name}: {path} is not in its cmd"


def test_the_models_are_listed_once():
    """petseg.models.spec.MODELS is the list: a train and a tune stage and a params section for each."""
    for stage in ("train", "tune"):
        assert {name.split("@")[1] for name in PIPELINE if name.startswith(f"{stage}@")} == set(MODELS)
    sections = {name for name, field in Params.model_fields.items() if hasattr(field.annotation, "architecture")}
    assert sections == set(MODELS)


def test_the_benchmark_scripts_import_what_exists():
    """benchmarks/ run beside the library: every petseg module and name they import exists."""
    import importlib
    scripts = [*(REPO / "benchmarks").glob("*.py")]
    scripts += [REPO / "benchmarks" / "gpu.sh"]  # its Python heredocs and one-liners
    for script in scripts:
        text = script.read_text()
        for module, names in re.findall(r"from (petseg[\w.]*) import ([\w, ]+)", text):
            loaded = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",") if n.strip()):
                assert hasattr(loaded, name), f"{script.name}: {module} has no {name}"


def test_the_defaults_outside_a_project_are_the_shipped_params():
    """predict and evaluate outside a project use what params.yaml ships with: one set of numbers."""
    from petseg.core.config import load_params
    from petseg.inference.settings import BOOTSTRAP_DEFAULTS, DEFAULTS, bootstrap_from_params, from_params
    params = load_params(REPO / "params.yaml")
    assert from_params(params) == DEFAULTS and bootstrap_from_params(params) == BOOTSTRAP_DEFAULTS


def test_a_commands_default_paths_are_the_pipelines():
    """A stage run by hand without its paths writes where dvc.yaml has it write (petseg.models.spec.PATHS)."""
    from petseg.models.spec import model_path
    for name in MODELS:
        words = shlex.split(PIPELINE[f"train@{name}"].cmd)
        for flag, kind in (("--tuned", "tuned"), ("--checkpoint", "checkpoint"), ("--metrics", "trained"),
                           ("--plot", "history")):
            assert words[words.index(flag) + 1] == str(model_path(kind, name))
        words = shlex.split(PIPELINE[f"tune@{name}"].cmd)
        assert words[words.index("--metrics") + 1] == str(model_path("tuned", name))
        assert words[words.index("--plot") + 1] == str(model_path("trials", name))


def uncached_lock_mismatches(root: Path) -> list[str]:
    """dvc.lock's stages that dvc.yaml no longer has, and its `cache: false` outputs (the files git tracks)
    whose bytes are not the ones it names."""
    import hashlib

    import yaml
    from dvc.repo import Repo
    with Repo(str(root)) as repo:
        uncached = {stage.name: {str(out.def_path) for out in stage.outs if not out.use_cache}
                    for stage in repo.index.stages}  # the name, as dvc.lock has it (`addressing` is cwd-relative)
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    found = [f"{name}: in dvc.lock, not in dvc.yaml" for name in sorted(set(locked) - set(uncached))]
    for name, entry in locked.items():
        for out in entry.get("outs", []):
            path = root / out["path"]
            if out["path"] in uncached.get(name, ()) and hashlib.md5(path.read_bytes()).hexdigest() != out["md5"]:
                found.append(f"{name}: {out['path']} differs from dvc.lock")
    return found


def test_the_committed_run_is_whole():
    """The metrics, plots and cards in git are the ones dvc.lock names, and it names only current stages."""
    assert uncached_lock_mismatches(REPO) == []
