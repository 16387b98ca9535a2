#!/usr/bin/env bash
# The full-scale comparison on one GPU: `bash benchmarks/gpu.sh OUT_DIR`, beside a copy of the whole
# dataset in the official layout (DATA, default ../shared/data/oxford-pets-160: 7,204 photos and trimaps, sides at most
# 160 px). Both models at 160 px with the reference's widths (profiles/full.yaml: UNet-64, ResNet34-UNet
# decoder 32, batch 16, 50 epochs each), a fixed learning rate (LR, default 1e-3) instead of the search,
# then the test split scored (pooled, per-image and reference-protocol Dice, boundary IoU) and the
# results table printed. Estimated at under 10 minutes on an H200, not measured: the ResNet34-UNet, the slower,
# steps 500 to 620 photos a second there at batch 16 (benchmarks/h200), so 50 epochs of 3,312 photos take 4.5 to
# 5.5 minutes. Each step has a timeout (TRAIN_TIMEOUT for each model, default 450 s); a model stopped by its
# timeout leaves no checkpoint and evaluate scores the other, so a slower GPU gives partial results, not none.
# The stages run directly (no DVC needed on the GPU machine).
# EPOCHS, IMAGE_SIZE, UNET_WIDTH override the profile (a dry run on a CPU: EPOCHS=1 IMAGE_SIZE=64 UNET_WIDTH=8).
# Without the package installed it runs from src/. On a machine that has torch but not petseg's other
# dependencies (albumentations, albucore, stringzilla, simsimd, pydantic and its needs: 8 MB of wheels), put their
# wheels in .whl/ (pip download --python-version of that machine) and they are installed to /tmp/site first.
set -uo pipefail
out=$(realpath -m "${1:-${OUT:-/tmp/petseg-gpu}}")
data=$(realpath "${DATA:-../shared/data/oxford-pets-160}") || { echo "no dataset at ${DATA:-../shared/data/oxford-pets-160}" >&2; exit 2; }
mkdir -p "$out"
exec > >(tee "$out/gpu.log") 2>&1
export NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
work=$(mktemp -d)
mkdir -p "$work/bin" && printf '#!/bin/sh\nexec python3 -m petseg "$@"\n' >"$work/bin/petseg" && chmod +x "$work/bin/petseg"
command -v petseg >/dev/null || export PATH=$work/bin:$PATH  # the package is not installed: run it from src/
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# params.yaml with profiles/full.yaml laid over it, reading the local copy at 160 px, no search
python3 - "$work/gpu.yaml" "$data" <<'PY'
import os, sys, yaml
from petseg.core.config import merge, validate
from petseg.models.spec import MODELS
out, data = sys.argv[1:]
params = merge(yaml.safe_load(open("params.yaml")), yaml.safe_load(open("profiles/full.yaml")))
params["data"].update(source="folder", folder=data)
params["preprocess"]["image_size"] = int(os.environ.get("IMAGE_SIZE", 160))
params["unet"]["base_channels"] = int(os.environ.get("UNET_WIDTH", params["unet"]["base_channels"]))
for model in MODELS:
    params[model]["epochs"] = int(os.environ.get("EPOCHS", params[model]["epochs"]))
params["lr"], params["tune"]["n_trials"] = float(os.environ.get("LR", 1e-3)), 0
# cudnn.benchmark (DETERMINISTIC=0, the default here): 1.2 to 1.5 times the step rate of deterministic kernels on
# an H200 (benchmarks/h200/*/bench_gpu_fast.json), which 50 epochs of both models need to fit the GPU time;
# reruns then differ in the last digits. DETERMINISTIC=1 keeps the project default, byte-identical reruns.
params["train"]["deterministic"] = os.environ.get("DETERMINISTIC", "0") == "1"
validate(params)
yaml.safe_dump(params, open(out, "w"), sort_keys=False)
print({k: params[k] for k in ("lr", "preprocess", "train", "unet", "resnet34_unet")})
PY
G="--params $work/gpu.yaml"
cp "$work/gpu.yaml" "$out/params.yaml"
mkdir -p "$out/metrics" "$out/models"
step() { local start=$SECONDS; "$@"; local rc=$?; echo "== $((SECONDS - start)) s, exit $rc: ${*:1:4}"; return $rc; }

step timeout 300 petseg $G download --out "$work/raw" \
  && step timeout 300 petseg $G preprocess --raw "$work/raw" --out "$work/processed" --counts "$out/metrics/preprocess.json" \
  || exit 1
# the run laid out as the pipeline's metrics/ and models/ in OUT_DIR, so that `petseg report` finds the
# epochs beside the evaluate JSON and the training minutes by the checkpoints' hashes in the timings log
train() {
  step timeout "${TRAIN_TIMEOUT:-450}" petseg $G train --model "$1" --data "$work/processed" --checkpoint "$out/models/$1.pt" \
    --metrics "$out/metrics/train_$1.json" --plot "$out/train_$1.csv" --timings "$out/timings.jsonl"
}
# CONCURRENT=1 (the default): both models train at once, as a GPU has room for both, so the run takes about the
# time of the slower one; their epoch times then include the other's load. CONCURRENT=0: one after the other.
if [ "${CONCURRENT:-1}" = 1 ]; then
  train resnet34_unet & first=$!  # the slower one first
  train unet & second=$!
  wait "$first" "$second"  # by pid: a bare wait would also wait for the tee above, which never ends
else
  train unet; train resnet34_unet
fi
trained=()  # a model stopped by its timeout has no checkpoint
for model in unet resnet34_unet; do [ -f "$out/models/$model.pt" ] && trained+=("$out/models/$model.pt"); done
[ ${#trained[@]} -gt 0 ] || { echo "no model finished training within TRAIN_TIMEOUT: nothing to evaluate" >&2; exit 1; }
step timeout 300 petseg $G evaluate --data "$work/processed" --raw "$work/raw" \
  --checkpoint "${trained[@]}" --out "$out/metrics/evaluate.json" \
  --per-image-dir "$out" --timings "$out/timings.jsonl" >/dev/null
(cd "$out" && petseg report --timings timings.jsonl | tee results.md)
mv "$out/models" "$work/models"  # the checkpoints stay behind: too large to bring back
