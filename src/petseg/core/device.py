"""Where and how the models compute: the device, and the precision policy (`train.amp`) in one place.

Training picks a precision once (`training_precision`) and the checkpoint records it; inference computes in
the precision the checkpoint records (`recorded_precision`), so a model scores the same whichever CPU runs it.
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

# The CPU features that decide which kernels are fast, as /proc/cpuinfo names them.
CPU_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The precision a model computes in: `fp32`, or autocast to `bf16` or `fp16`; `why` it was chosen."""
    name: str
    why: str

    @property
    def amp(self) -> bool:
        return self.name != "fp32"

    def __str__(self) -> str:
        return f"{self.name if self.name == 'fp32' else self.name + ' autocast'} ({self.why})"


def best_device() -> torch.device:
    """The GPU of this process (under torchrun, the one of its LOCAL_RANK), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}")


def cpu_description() -> str:
    """`AMD EPYC, family 25 model 17 (AVX2, AVX-512, AVX512-BF16)`: model name, family and model numbers (a virtual
    machine's model name may be only the brand, as here, which hides a Zen 4 from a Zen 5) and the features that matter."""
    fields, flags = {}, set()
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "flags":
            flags = set(value.split())
            break
        fields.setdefault(key, value)
    name = fields.get("model name", "unknown CPU")
    if fields.get("cpu family") and fields.get("model"):
        name += f", family {fields['cpu family']} model {fields['model']}"
    features = [label for flag, label in CPU_FEATURES.items() if flag in flags]
    return f"{name} ({', '.join(features) or 'none of ' + ', '.join(CPU_FEATURES.values())})"


def native_bf16_cpu() -> str | None:
    """The bf16 hardware this CPU has (AMX or AVX512-BF16), or None: without it bf16 is emulated, and slower."""
    capabilities = torch.cpu.get_capabilities()
    if capabilities.get("amx_bf16"):
        return "AMX-BF16"
    return "AVX512-BF16" if capabilities.get("avx512_bf16") else None


def half_precision(device: torch.device) -> str:
    """The half precision of autocast on `device`: bf16 on a CPU or a GPU that has it, else fp16."""
    return "bf16" if device.type == "cpu" or torch.cuda.is_bf16_supported() else "fp16"


def training_precision(setting: str, device: torch.device) -> Precision:
    """train.amp (auto | on | off) on `device`: the precision training computes in, and why.

    auto: autocast on every GPU; on a CPU only with native bf16 (much faster steps with AMX or AVX512-BF16),
    since on an AVX2-only CPU bf16 autocast measured slower than fp32.
    """
    if setting == "off":
        return Precision("fp32", "train.amp: off")
    if setting == "on":
        return Precision(half_precision(device), "train.amp: on")
    if device.type == "cuda":
        return Precision(half_precision(device), "auto: a GPU")
    hardware = native_bf16_cpu()
    return Precision("bf16", f"auto: this CPU has {hardware}") if hardware else \
        Precision("fp32", "auto: no native bf16 on this CPU")


def recorded_precision(meta: dict, device: torch.device) -> Precision:
    """Inference in the precision the checkpoint records (a half precision as `device` has it)."""
    name = meta.get("precision", "fp32")
    if name == "fp32":
        return Precision("fp32", "as trained")
    return Precision(half_precision(device), f"trained in {name}")


def where(device: torch.device) -> str:
    """`2 threads` on a CPU, the GPU's name on a GPU."""
    threads = torch.get_num_threads()
    return f"{threads} thread{'s' * (threads != 1)}" if device.type == "cpu" else torch.cuda.get_device_name(device)


def announce(command: str, device: torch.device, precision: Precision) -> None:
    """The precision and where it runs, said once on stderr for the command's log."""
    print(f"petseg {command}: {precision}, {where(device)}", file=sys.stderr, flush=True)


def autocast(device: torch.device, precision: Precision):
    """Mixed precision as `precision` says; nothing for fp32."""
    if not precision.amp:
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision.name])


def grad_scaler(device: torch.device, precision: Precision) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast (a GPU without bf16); disabled, a no-op, otherwise."""
    return torch.amp.GradScaler(enabled=precision.name == "fp16" and device.type == "cuda")
