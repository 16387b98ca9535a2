"""Progress bars on a terminal; nothing extra when the output is a log (CI, `dvc queue`)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable, desc: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar (count, rate, ETA) when stderr is a terminal; the iterable itself otherwise.

    Stages print one plain line per epoch, trial or file either way, so logs stay readable.
    """
    if not sys.stderr.isatty():
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)


def note(message: str) -> None:
    """A progress line (an epoch, a trial, a skipped file): on stderr, so stdout stays the command's product."""
    print(message, file=sys.stderr, flush=True)
