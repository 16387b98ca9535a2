"""Shared fixtures: the project's own shipped sample, extracted once, a tiny subset of it, and a throwaway
PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from petseg.data.archives import ARCHIVES, extract  # noqa: E402
from petseg.data.preprocess import preprocess  # noqa: E402
from petseg.tools.make_sample import make_sample  # noqa: E402
from tests.postgres import Postgres, server_programs, throwaway_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ARCHIVES = {name: REPO / "data" / "sample" / name for name in ARCHIVES}
# A tiny subset with the quirks: a PNG and a GIF behind .jpg, photos in no list (the GIF, with an empty trimap, is one).
TINY_TRAINVAL = ["Abyssinian_1", "Abyssinian_10", "Abyssinian_100", "Abyssinian_101", "Abyssinian_102",
                 "Abyssinian_103", "Abyssinian_104", "Abyssinian_105", "Bengal_10",
                 "Bengal_100", "Bengal_110", "american_bulldog_10", "american_bulldog_100",
                 "american_bulldog_101", "american_bulldog_108"]
TINY_TEST = ["Abyssinian_5", "Abyssinian_201", "Abyssinian_204", "Abyssinian_206", "american_bulldog_205",
             "american_bulldog_208"]
TINY_STEMS = TINY_TRAINVAL + TINY_TEST + ["Abyssinian_34", "Abyssinian_82"]


def study_trials(journal: Path, states: tuple[str, ...] | None = None) -> list[tuple]:
    """(study, trial number, state, lr) of every trial in a tune journal file, read with Optuna."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    if not journal.exists():
        return []
    storage = JournalStorage(JournalFileBackend(str(journal)))
    rows = [(study.study_name, t.number, t.state.name, t.params.get("lr"))
            for study in storage.get_all_studies() for t in storage.get_all_trials(study._study_id, deepcopy=False)]
    return sorted(row for row in rows if states is None or row[2] in states)


@pytest.fixture(scope="session")
def raw_sample(tmp_path_factory) -> Path:
    """The shipped sample archives, extracted to the official layout."""
    out = tmp_path_factory.mktemp("sample") / "raw"
    extract(SAMPLE_ARCHIVES, out)
    return out


@pytest.fixture(scope="session")
def tiny_archives(raw_sample, tmp_path_factory) -> tuple[Path, dict]:
    """Archives of TINY_STEMS made from the shipped sample, and their {name: {size, md5}}."""
    out = tmp_path_factory.mktemp("tiny_archives")
    checksums = make_sample(raw_sample, out, max_side=160, quality=90, stems=TINY_STEMS)
    return out, checksums


@pytest.fixture(scope="session")
def tiny_raw(tiny_archives, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "raw"
    extract({name: tiny_archives[0] / name for name in ARCHIVES}, out)
    return out


@pytest.fixture(scope="session")
def tiny_processed(tiny_raw, tmp_path_factory) -> Path:
    """TINY_STEMS preprocessed at 64 px: 13 train, 2 valid, 6 test photos (Abyssinian_34 is in no list)."""
    out = tmp_path_factory.mktemp("tiny_processed")
    preprocess(tiny_raw, out, 64, 0.1, seed=42)
    return out


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """A throwaway PostgreSQL server for the session (tests/postgres.py); skipped where the server programs
    are missing, unless PETSEG_REQUIRE_POSTGRES is set (CI, after `make postgres`)."""
    if server_programs() is None:
        if os.environ.get("PETSEG_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here (PETSEG_REQUIRE_POSTGRES): run `make postgres`")
        pytest.skip("no PostgreSQL server programs: `make postgres` installs Debian's")
    with throwaway_server() as server:
        yield server
