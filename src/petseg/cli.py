"""`petseg <command>`: a pipeline stage (petseg/stages, the commands dvc.yaml runs) or a tool (petseg/tools).

Each command module has `HELP`, `PARAMS` (whether it reads params.yaml), `add_arguments(parser)` and
`run(args, params) -> summary`. `petseg <command>` imports that command's module alone (so a stage runs
its module, the library and this file: its dvc.yaml deps); `petseg --help` imports them all. Modules import
the library only inside `run`, so help is instant and `petseg predict` with an ONNX model never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from petseg.core.errors import ParamError, PetsegError

STAGES = ["check", "download", "preprocess", "tune", "train", "evaluate", "visualize", "export"]
TOOLS = ["predict", "report", "compare", "ablation", "plots-template", "bench", "profile", "make-sample"]
# Bad input (params, files, checkpoints, a diverging loss: petseg's own errors) and the file system's errors
# are shown as one line; PETSEG_DEBUG=1 shows the traceback too. Anything else is a bug and keeps its traceback.
ERRORS = (PetsegError, OSError)


class CommandParser(argparse.ArgumentParser):
    """The parser of one command; `path` adds a path option whose help ends with its default."""

    def path(self, flag: str, default: str | None, help: str, **kwargs) -> None:
        default_text = " (default: %(default)s)" if default is not None else ""
        self.add_argument(flag, type=Path, default=None if default is None else Path(default),
                          help=help + default_text, **kwargs)


def command_module(command: str):
    """The module of `petseg <command>`: petseg.stages.<command> or petseg.tools.<command>."""
    package = "stages" if command in STAGES else "tools"
    return importlib.import_module(f"petseg.{package}.{command.replace('-', '_')}")


def build_parser(commands: list[str] = STAGES + TOOLS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petseg", description="Binary pet segmentation on Oxford-IIIT Pet, one subcommand per pipeline stage "
        "(dvc.yaml runs them) and a few tools. Each stage reads its params, writes its outputs atomically and ends "
        "with a one-line summary on stderr; stdout carries only a command's product (JSON, Markdown, arguments).")
    parser.add_argument("--params", type=Path, help="params file (default: params.yaml; predict never reads it, "
                        "evaluate only when it exists)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:",
                                parser_class=CommandParser)
    for command in commands:
        module = command_module(command)
        p = sub.add_parser(command, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(module=module)
    return parser


def read_params(args):
    """params.yaml (or --params), typed and validated; None where the command can do without and there is none.
    A module's PARAMS: "required", "if present" (evaluate, export: a project's or else the checkpoint's) or "never"."""
    when = args.module.PARAMS
    path = args.params or Path("params.yaml")
    if when == "never" or (when == "if present" and args.params is None and not path.is_file()):
        return None
    from petseg.core.config import load_params  # pydantic: not on an install for ONNX models only
    return load_params(path)


def chosen_command(argv: list[str]) -> list[str]:
    """[the command] when argv names one (`petseg --params p.yaml train ...`), else every command (--help)."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--params")
    first.add_argument("command", nargs="?")
    known, _ = first.parse_known_args(argv)
    return [known.command] if known.command in STAGES + TOOLS else STAGES + TOOLS


def git_outputs(args) -> list[Path]:
    """The paths given to a stage's options that name outputs git tracks (its module's GIT_OUTPUTS)."""
    paths = []
    for option in getattr(args.module, "GIT_OUTPUTS", ()):
        value = getattr(args, option, None)
        paths += [] if value is None else value if isinstance(value, list) else [value]
    return paths


def restore_removed(paths: list[Path]) -> list[str]:
    """Put back from git's index the tracked files under `paths` that are missing: DVC deletes a stage's outputs
    before it runs, and a stage that fails or is stopped should leave a user's tracked files as they were: as last
    staged (autostage stages dvc.lock alone, so the rest as of the user's last `git add`). Outside git: nothing."""
    if not paths:
        return []
    def git(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *cmd], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                              check=False)
    try:
        listed = git("ls-files", "-z", "--deleted", "--", *map(str, paths))
        missing = [name for name in listed.stdout.split("\0") if name] if listed.returncode == 0 else []
        if missing and git("checkout", "--", *missing).returncode == 0:
            return missing
    except (OSError, subprocess.SubprocessError):  # no git, or a repository git cannot read
        pass
    return []


def stopper(pid: int):
    """A handler under which SIGTERM and SIGHUP end the command of process `pid` as Ctrl-C does (outputs
    discarded, tracked files put back); a worker forked from it (a Pool, a DataLoader) dies as by default."""
    def stop(signum, frame):
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        raise KeyboardInterrupt
    return stop


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(chosen_command(argv)).parse_args(argv)
    start = time.perf_counter()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stopper(os.getpid()))
    try:
        summary = run_command(args)
    except ParamError as err:
        print(f"petseg: {err.source or args.params or 'params.yaml'}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"petseg {args.command}: interrupted; no partial output was left in place", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `petseg report | head -3`: the reader has what it wanted; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except ERRORS as err:
        if os.environ.get("PETSEG_DEBUG"):
            raise
        print(f"petseg {args.command}: error: {err}", file=sys.stderr)
        return 1
    # stdout is the product (JSON, Markdown, arguments); the summary goes with the progress, to stderr
    print(f"petseg {args.command}: {summary} ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return 0


def run_command(args) -> str:
    """Run the command; if it fails or is stopped, put back the tracked outputs DVC deleted before it ran."""
    try:
        return args.module.run(args, read_params(args))
    except BaseException:
        restored = restore_removed(git_outputs(args))
        if restored:
            print(f"petseg {args.command}: put back {', '.join(restored)} as git's index has them (DVC deleted "
                  "them before this run)", file=sys.stderr)
        raise
