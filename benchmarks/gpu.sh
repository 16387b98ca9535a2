#!/usr/bin/env bash
# The GPU check, on any one-GPU machine with torch: `bash benchmarks/gpu.sh OUT_DIR`.
# 1. `petseg bench` at the full-scale profile (profiles/full.yaml on the shipped sample, 256 px), with
#    deterministic kernels (the default) and with cudnn.benchmark; 2. the UNet-64 trained twice for
#    3 epochs (byte-identical checkpoints?) and once without AMP; 3. both models trained for 20 epochs
#    at full scale on the sample (lr 1e-3, no tuning) and evaluated (flip TTA, inference_mode).
# Without the package installed it runs from src/. On a machine that has torch but not petseg's other
# dependencies (albumentations, optuna and their needs), put their wheels
# in .whl/ (pip download --python-version of that machine) and they are installed to /tmp/site first.
set -uo pipefail
out=${1:-${OUT:-/tmp/petseg-gpu}}
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
res=$work/res; mkdir -p "$res"
pack() { tar -czf "$out/results.tgz" -C "$work" res; }  # the run's small outputs, in one file
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'bf16', torch.cuda.is_bf16_supported())"

# The full-scale profile on the shipped sample (the official archives are not on the machine).
python3 - "$work" <<'PY'
import sys, yaml
from petseg.core.config import merge, validate
from petseg.models.spec import MODELS
work = sys.argv[1]
params = merge(yaml.safe_load(open("params.yaml")), yaml.safe_load(open("profiles/full.yaml")))
params["data"]["source"] = "sample"
params["lr"] = 1e-3
validate(params)
yaml.safe_dump(params, open(f"{work}/gpu.yaml", "w"), sort_keys=False)
params["train"]["deterministic"] = False
yaml.safe_dump(params, open(f"{work}/gpu_fast.yaml", "w"), sort_keys=False)
params["train"]["deterministic"], params["train"]["amp"] = True, "off"
yaml.safe_dump(params, open(f"{work}/gpu_fp32.yaml", "w"), sort_keys=False)
for model in MODELS:
    params[model]["epochs"] = 3
params["train"]["amp"] = "auto"
yaml.safe_dump(params, open(f"{work}/gpu_3ep.yaml", "w"), sort_keys=False)
params["train"]["amp"] = "off"
yaml.safe_dump(params, open(f"{work}/gpu_3ep_fp32.yaml", "w"), sort_keys=False)
for model in MODELS:
    params[model]["epochs"] = 20
params["train"]["amp"] = "auto"
yaml.safe_dump(params, open(f"{work}/gpu_20ep.yaml", "w"), sort_keys=False)
PY
G="--params $work/gpu.yaml"
petseg $G download --out "$work/raw" && petseg $G preprocess --raw "$work/raw" --out "$work/p256" --counts "$work/counts.json"

echo "== bench, deterministic kernels"
timeout 240 petseg $G bench --raw "$work/raw" --data "$work/p256" --repeats 5 --out "$out/bench_gpu.json"; pack
echo "== bench, cudnn.benchmark"
timeout 180 petseg --params "$work/gpu_fast.yaml" bench --raw "$work/raw" --data "$work/p256" --repeats 5 \
  --out "$out/bench_gpu_fast.json"; pack

echo "== determinism and AMP: UNet-64, 3 epochs"
for run in a b; do
  timeout 120 petseg --params "$work/gpu_3ep.yaml" train --model unet --data "$work/p256" \
    --checkpoint "$work/$run/unet.pt" --metrics "$res/train3_unet_$run.json" --plot "$res/train3_unet_$run.csv"
done
timeout 120 petseg --params "$work/gpu_3ep_fp32.yaml" train --model unet --data "$work/p256" \
  --checkpoint "$work/fp32/unet.pt" --metrics "$res/train3_unet_fp32.json" --plot "$res/train3_unet_fp32.csv"
md5sum "$work"/{a,b,fp32}/unet.pt | tee "$res/checkpoints.md5"; pack

echo "== both models, 20 epochs at full scale on the sample"
for model in unet resnet34_unet; do
  timeout 200 petseg --params "$work/gpu_20ep.yaml" train --model "$model" --data "$work/p256" \
    --checkpoint "$work/m/$model.pt" --metrics "$res/train20_$model.json" --plot "$res/train20_$model.csv"; pack
done
timeout 120 petseg --params "$work/gpu_20ep.yaml" evaluate --data "$work/p256" --raw "$work/raw" \
  --checkpoint "$work/m/unet.pt" "$work/m/resnet34_unet.pt" --out "$res/evaluate20.json" >/dev/null
python3 -c "import json; from petseg.tools.report import results_table; print(results_table(json.load(open('$res/evaluate20.json'))))"
pack
