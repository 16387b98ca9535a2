"""train.amp: which precision auto picks on which machine, and how a stage reports it."""

from __future__ import annotations

import pytest
import torch
import yaml

from petseg.core import device as dev
from petseg.core.config import load_params
from tests.conftest import REPO

CPU = torch.device("cpu")


@pytest.mark.parametrize("capabilities, expected", [
    ({"amx_bf16": True, "avx512_bf16": True, "avx2": True}, (True, "auto: this CPU has AMX-BF16")),
    ({"amx_bf16": False, "avx512_bf16": True, "avx2": True}, (True, "auto: this CPU has AVX512-BF16")),
    ({"amx_bf16": False, "avx512_bf16": False, "avx2": True}, (False, "auto: no native bf16 on this CPU")),
    ({}, (False, "auto: no native bf16 on this CPU")),
])
def test_auto_uses_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert dev.amp_choice("auto", CPU) == expected
    assert dev.amp_choice("on", CPU) == (True, "train.amp: on")
    assert dev.amp_choice("off", CPU) == (False, "train.amp: off")


def test_the_log_names_the_precision_the_reason_and_the_threads(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert dev.precision_note("auto", CPU) == "bf16 autocast (auto: this CPU has AMX-BF16), 2 threads"
        torch.set_num_threads(1)  # what a queued run gets from `make queue JOBS=2` on 2 cores
        assert dev.precision_note("off", CPU) == "fp32 (train.amp: off), 1 thread"
    finally:
        torch.set_num_threads(threads)


def test_autocast_on_the_cpu_computes_in_bf16_and_off_in_fp32():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with dev.autocast(CPU, True):
        assert conv(x).dtype == torch.bfloat16
    with dev.autocast(CPU, False):
        assert conv(x).dtype == torch.float32
    assert not dev.grad_scaler(CPU, True).is_enabled()  # bf16 needs no loss scaling


def test_cpu_description_names_the_features_that_matter(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 "
                       "amx_tile\n\nprocessor\t: 1\nmodel name\t: Test CPU 9000\n")
    real_path = dev.Path
    monkeypatch.setattr(dev, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert dev.cpu_description() == "Test CPU 9000 (AVX2, AVX-512, AVX512-BF16, AMX-BF16)"
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu sse2\n")
    assert dev.cpu_description() == "Old CPU (none of AVX2, AVX-512, AVX512-BF16, AMX-BF16)"


@pytest.mark.parametrize("written, expected", [("on", "on"), ("off", "off"), ("auto", "auto"), ("'on'", "on")])
def test_a_bare_on_or_off_from_dvc_exp_run_set_is_the_setting(tmp_path, written, expected):
    text = (REPO / "params.yaml").read_text().replace("  amp: auto ", f"  amp: {written} ", 1)
    assert yaml.safe_load(text)["train"]["amp"] in (True, False, "auto", "on")  # what PyYAML makes of it
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path).train.amp == expected
