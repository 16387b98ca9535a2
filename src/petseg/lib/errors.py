"""The error of a bad params file, apart from the loader: `petseg predict` with an ONNX model catches it
without importing pydantic (an install for ONNX models has only onnxruntime, numpy and pillow)."""

from __future__ import annotations

from pathlib import Path


class ParamError(ValueError):
    """A bad value in params.yaml; the message names the key, the value and what is allowed.

    `source` is the file the value came from (params.yaml, a profile), when known.
    """

    def __init__(self, message: str, source: str | Path | None = None):
        super().__init__(message)
        self.source = source
