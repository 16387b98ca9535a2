"""Past one machine: a study on a real PostgreSQL server shared by two checkouts ("two machines"), its password
kept out of every file, and the one-line errors of a storage that cannot be reached."""

from __future__ import annotations

import json
import signal
import sys
import subprocess
from pathlib import Path

import pytest

from tests.test_distributed import project
from tests.test_interrupt import start, wait_for


@pytest.fixture(scope="module")
def processed(tiny_processed) -> Path:
    return tiny_processed


def trials(url: str) -> list[tuple[int, str]]:
    """(trial number, state) of every trial in the storage's one study."""
    from petseg.training.search import open_storage
    storage = open_storage(url)
    try:
        return sorted((t.number, t.state.name) for study in storage.get_all_studies()
                      for t in storage.get_all_trials(study._study_id, deepcopy=False))
    finally:
        storage.engine.dispose()


def done_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " trial " in line and "done" in line]


def test_two_machines_share_a_postgres_study_and_retire_the_trial_of_a_killed_one(processed, postgres, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("PGPASSWORD", postgres.password)  # the password only here, never in params.yaml
    url = postgres.create_database("shared")
    a, b = (project(tmp_path / name, processed, storage=url) for name in ("a", "b"))  # n_trials 4
    # A finishes trial 0 and stops one batch into trial 1, alive: its heartbeats keep that slot claimed
    first = start(a, "tune", "--model", "unet", pause_in_epoch=2)
    wait_for((a / "paused").exists)
    second = start(b, "tune", "--model", "unet")
    # B runs trials alongside; it cannot finish the study while A's trial is alive, so this wait ends
    wait_for(lambda: sum(state in ("COMPLETE", "PRUNED") for _, state in trials(url)) >= 2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    a_err = first.stderr.read()
    out, b_err = second.communicate(timeout=600)
    assert second.returncode == 0, b_err
    states = trials(url)
    finished = [n for n, state in states if state in ("COMPLETE", "PRUNED")]
    assert len(finished) == len(set(finished)) == 4  # tune.n_trials in all, none run twice
    assert [n for n, state in states if state == "FAIL"] == [1]  # A's killed trial, retired after the heartbeats
    assert not [n for n, state in states if state in ("RUNNING", "WAITING")]
    assert len(done_lines(a_err)) == 1 and len(done_lines(b_err)) == 3, (a_err, b_err)

    rerun = start(a, "tune", "--model", "unet")  # A again: the study is complete, nothing more runs
    a_out, a_err2 = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, a_err2
    assert trials(url) == states
    best = [json.loads((root / "metrics" / "tune_unet.json").read_text()) for root in (a, b)]
    assert best[0] == best[1] and best[0]["n_trials"] == 4
    assert (a / "plots" / "tune_unet.csv").read_bytes() == (b / "plots" / "tune_unet.csv").read_bytes()

    logs = [a_err, out, b_err, a_out, a_err2]
    files = [p for root in (a, b) for p in root.rglob("*") if p.is_file() and "processed" not in p.parts]
    assert any(p.name == "params.yaml" for p in files) and any(p.parent.name == "metrics" for p in files)
    assert not [p for p in files if postgres.password.encode() in p.read_bytes()]
    assert not [log for log in logs if postgres.password in log]


def tune_error(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "petseg", "tune", "--model", "unet"], cwd=root,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


@pytest.mark.parametrize("case, reason", [
    ("missing database", 'database "nowhere" does not exist'),
    ("server down", "Is the server running"),
    ("wrong password", 'password authentication failed for user "petseg"'),
    ("password in params", "a password does not belong in params.yaml"),
])
def test_a_storage_that_cannot_be_opened_is_one_line_naming_it_without_its_password(
        processed, postgres, tmp_path, monkeypatch, case, reason):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PETSEG_STORAGE_PASSWORD", postgres.password)  # petseg's variable, for any RDB
    url = {"missing database": postgres.url("nowhere"),
           "server down": f"postgresql://petseg@/petseg?host={tmp_path}",  # no server's socket there
           "wrong password": postgres.url("postgres"),
           "password in params": postgres.url("postgres").replace("petseg@", f"petseg:{postgres.password}@")}[case]
    if case == "wrong password":
        monkeypatch.setenv("PETSEG_STORAGE_PASSWORD", "not-" + postgres.password)
    result = tune_error(project(tmp_path / "p", processed, storage=url))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("petseg tune: error: tune.storage postgresql://petseg"), lines[0]
    assert reason in lines[0] and postgres.password not in result.stderr
    if case == "password in params":
        assert "postgresql://petseg:***@" in lines[0]
    else:
        assert url in lines[0]
