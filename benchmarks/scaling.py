"""Past one machine, measured (docs/scaling.md): tuning trials per hour with one and with two `petseg tune`
processes sharing one study on a PostgreSQL server, and UNet training with one process and with two torchrun
node processes that meet through c10d rendezvous on 127.0.0.1.

    python benchmarks/scaling.py                           # the measurement, a Markdown table on stdout
    python benchmarks/scaling.py --trials 2 --epochs 1     # a quick check that it runs

The photos are the shipped sample (data/sample) preprocessed as params.yaml says, and every other setting is
params.yaml's, except `lr` (fixed for training: no tuned rate is needed) and the counts given here. Each
process runs with OMP_NUM_THREADS = cores / processes, as `make queue` does. The study lives on the throwaway
server of the tests (tests/postgres.py, so `make postgres` first): initdb in a temporary folder, a Unix socket.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from petseg.core.device import cpu_description  # noqa: E402
from petseg.core.timings import LOG, file_md5, read_timings  # noqa: E402
from petseg.data.archives import ARCHIVES, extract  # noqa: E402
from petseg.data.preprocess import preprocess  # noqa: E402
from tests.postgres import throwaway_server  # noqa: E402

CORES = os.cpu_count() or 1


def project(root: Path, processed: Path, **sections) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["lr"] = 1e-3
    for section, values in sections.items():
        params[section].update(values)
    (root / "data").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "data" / "processed").symlink_to(processed)
    return root


def run_together(commands: list[tuple[list[str], Path]], env: dict) -> float:
    """Start every command at once; the wall-clock seconds until the last one ends."""
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for cmd, cwd in commands]
    errors = [p.communicate()[1] for p in procs]
    seconds = time.perf_counter() - start
    for p, err in zip(procs, errors):
        if p.returncode != 0:
            sys.exit(f"{' '.join(p.args)} failed:\n{err[-3000:]}")
    return seconds


def tuning(processed: Path, server, workers: int, trials: int, tmp: Path) -> dict:
    url = server.create_database(f"bench{workers}")
    roots = [project(tmp / f"tune{workers}-{i}", processed, tune={"n_trials": trials, "storage": url})
             for i in range(workers)]
    env = dict(os.environ, PGPASSWORD=server.password, OMP_NUM_THREADS=str(max(1, CORES // workers)))
    seconds = run_together([([sys.executable, "-m", "petseg", "tune", "--model", "unet"], r) for r in roots], env)
    metrics = json.loads((roots[0] / "metrics" / "tune_unet.json").read_text())
    return {"processes": workers, "trials": metrics["n_trials"], "epochs": metrics["trial_epochs"],
            "seconds": seconds, "per_hour": metrics["n_trials"] * 3600 / seconds}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training(processed: Path, nodes: int, epochs: int, tmp: Path) -> dict:
    roots = [project(tmp / f"train{nodes}-{i}", processed, unet={"epochs": epochs}) for i in range(nodes)]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, CORES // nodes)), GLOO_SOCKET_IFNAME="lo")
    train = ["--module", "petseg", "train", "--model", "unet"]
    if nodes == 1:
        commands = [([sys.executable, "-m", "petseg", *train[2:]], roots[0])]
    else:
        port = free_port()
        commands = [([sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", "--nproc-per-node=1",
                      "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=bench",
                      f"--rdzv-conf=is_host={int(i == 0)}", "--local-addr=127.0.0.1", *train], root)
                    for i, root in enumerate(roots)]
    seconds = run_together(commands, env)
    written = next(r for r in roots if (r / "metrics" / "train_unet.json").exists())  # rank 0's node
    with open(written / "plots" / "train_unet.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    timed = read_timings(written / LOG)[file_md5(written / "models" / "unet.pt")]  # each epoch's own seconds
    return {"processes": nodes, "epochs": len(rows), "seconds": seconds,
            "epoch_seconds": sum(timed["epoch_seconds"]) / len(rows),
            "valid_dice": max(float(r["valid_dice"]) for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="tune.n_trials of each study")
    parser.add_argument("--epochs", type=int, default=4, help="UNet training epochs")
    parser.add_argument("--image-size", type=int, help="preprocess.image_size (default: params.yaml's)")
    args = parser.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    with tempfile.TemporaryDirectory() as folder, throwaway_server() as server:
        tmp = Path(folder)
        raw, processed = tmp / "raw", tmp / "processed"
        extract({name: REPO / "data" / "sample" / name for name in ARCHIVES}, raw)
        pre = params["preprocess"]
        size = args.image_size or pre["image_size"]
        preprocess(raw, processed, size, pre["valid_fraction"], seed=params["seed"])
        tune = [tuning(processed, server, workers, args.trials, tmp) for workers in (1, 2)]
        train = [training(processed, nodes, args.epochs, tmp) for nodes in (1, 2)]
    print(f"CPU: {cpu_description()}, {CORES} cores; {size} px; load average at the end "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| tune processes | trials | trial epochs | wall s | trials per hour |\n|---|---|---|---|---|")
    for r in tune:
        print(f"| {r['processes']} | {r['trials']} | {r['epochs']} | {r['seconds']:.0f} | {r['per_hour']:.0f} |")
    print("\n| training processes | epochs | wall s | s per epoch | best valid Dice |\n|---|---|---|---|---|")
    for r in train:
        label = "1 (plain `petseg train`)" if r["processes"] == 1 else f"{r['processes']} torchrun nodes"
        print(f"| {label} | {r['epochs']} | {r['seconds']:.0f} | {r['epoch_seconds']:.1f} | "
              f"{r['valid_dice']:.4f} |")


if __name__ == "__main__":
    main()
