"""petseg's own errors: bad input (params, files, models, a diverging run) named in one line.

The CLI prints a PetsegError (or an OSError from the file system) as one line and exits; any other exception
is a bug in petseg and keeps its traceback. Torch-free and pydantic-free: `petseg predict` with an ONNX model
catches these on an install that has only onnxruntime, numpy and Pillow.
"""

from __future__ import annotations

import re
from pathlib import Path


def brief(err: BaseException, limit: int = 120) -> str:
    """A library's error message for one line: its first sentence, cut at a word within `limit` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = re.split(r"(?<=[^.]\.)\s", text, maxsplit=1)[0].rstrip(".")
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return text


class PetsegError(ValueError):
    """Bad input to petseg; the message is one line that names the file, key or value and what is allowed."""


class ParamError(PetsegError):
    """A bad value in params.yaml; the message names the key, the value and what is allowed.

    `source` is the file the value came from (params.yaml, a profile), when known.
    """

    def __init__(self, message: str, source: str | Path | None = None):
        super().__init__(message)
        self.source = source


class Diverged(PetsegError, FloatingPointError):
    """A loss that is not finite: training stops before the weights change."""
