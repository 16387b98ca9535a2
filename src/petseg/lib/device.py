"""Where and how the models compute: the device, the precision (`train.amp`) and the CPU's capabilities."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

# The CPU features that decide which kernels are fast, as /proc/cpuinfo names them.
CPU_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


def best_device() -> torch.device:
    """The GPU of this process (under torchrun, the one of its LOCAL_RANK), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}")


def announce_device(amp_setting: str, command: str) -> tuple[torch.device, bool]:
    """The device and whether to autocast (train.amp), said once on stderr for the command's log."""
    device = best_device()
    print(f"petseg {command}: {precision_note(amp_setting, device)}", file=sys.stderr, flush=True)
    return device, use_amp(amp_setting, device)


def cpu_description() -> str:
    """`Intel(R) Xeon(R) Processor (AVX2, AVX-512, AVX512-BF16, AMX-BF16)`: model name and the features that matter."""
    name, flags = "unknown CPU", set()
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    features = [label for flag, label in CPU_FEATURES.items() if flag in flags]
    return f"{name} ({', '.join(features) or 'none of ' + ', '.join(CPU_FEATURES.values())})"


def native_bf16_cpu() -> str | None:
    """The bf16 hardware this CPU has (AMX or AVX512-BF16), or None: without it bf16 is emulated, and slower."""
    capabilities = torch.cpu.get_capabilities()
    if capabilities.get("amx_bf16"):
        return "AMX-BF16"
    return "AVX512-BF16" if capabilities.get("avx512_bf16") else None


def amp_choice(setting: str, device: torch.device) -> tuple[bool, str]:
    """train.amp (auto | on | off) on `device`: whether to autocast, and why, for the stage's log line.

    auto: on every GPU; on a CPU only with native bf16 (much faster steps with AMX), since on an
    AVX2-only CPU bf16 autocast measured slower than fp32.
    """
    if setting != "auto":
        return setting == "on", f"train.amp: {setting}"
    if device.type == "cuda":
        return True, "auto: a GPU"
    hardware = native_bf16_cpu()
    return (True, f"auto: this CPU has {hardware}") if hardware else (False, "auto: no native bf16 on this CPU")


def use_amp(setting: str, device: torch.device) -> bool:
    return amp_choice(setting, device)[0]


def precision_name(setting: str, device: torch.device) -> str:
    """`bf16 autocast (auto: this CPU has AMX-BF16)`: the precision train.amp gives on `device`, and why."""
    enabled, why = amp_choice(setting, device)
    if not enabled:
        name = "fp32"
    elif device.type == "cpu" or torch.cuda.is_bf16_supported():
        name = "bf16 autocast"
    else:
        name = "fp16 autocast"
    return f"{name} ({why})"


def precision_note(setting: str, device: torch.device) -> str:
    """The precision and where it runs (`..., 2 threads` or the GPU's name), for a stage's log line."""
    threads = torch.get_num_threads()
    where = f"{threads} thread{'s' * (threads != 1)}" if device.type == "cpu" else torch.cuda.get_device_name(device)
    return f"{precision_name(setting, device)}, {where}"


def autocast(device: torch.device, enabled: bool):
    """Mixed precision: bf16 where the device has it, else fp16 (which needs a GradScaler)."""
    if not enabled:
        return nullcontext()
    dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast (a GPU without bf16); disabled, a no-op, otherwise."""
    return torch.amp.GradScaler(enabled=amp and device.type == "cuda" and not torch.cuda.is_bf16_supported())
