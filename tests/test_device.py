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
    ({"amx_bf16": True, "avx512_bf16": True, "avx2": True}, ("bf16", "auto: this CPU has AMX-BF16")),
    ({"amx_bf16": False, "avx512_bf16": True, "avx2": True}, ("bf16", "auto: this CPU has AVX512-BF16")),
    ({"amx_bf16": False, "avx512_bf16": False, "avx2": True}, ("fp32", "auto: no native bf16 on this CPU")),
    ({}, ("fp32", "auto: no native bf16 on this CPU")),
])
def test_auto_uses_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert dev.training_precision("auto", CPU) == dev.Precision(*expected)
    assert dev.training_precision("on", CPU) == dev.Precision("bf16", "train.amp: on")
    assert dev.training_precision("off", CPU) == dev.Precision("fp32", "train.amp: off")


def test_inference_uses_the_precision_the_checkpoint_records(monkeypatch):
    """Not the machine's: an fp32 model is scored in fp32 on an AMX CPU, a bf16 one in bf16 on any CPU."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert dev.recorded_precision({"precision": "fp32"}, CPU).name == "fp32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {})
    assert dev.recorded_precision({"precision": "bf16"}, CPU).name == "bf16"
    assert dev.recorded_precision({"precision": "fp16"}, CPU).name == "bf16"  # a GPU's fp16 model on a CPU
    assert dev.recorded_precision({}, CPU).name == "fp32"  # a checkpoint that records none


def test_the_log_names_the_precision_the_reason_and_the_threads(monkeypatch, capsys):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        dev.announce("train", CPU, dev.training_precision("auto", CPU))
        torch.set_num_threads(1)  # what a queued run gets from `make queue JOBS=2` on 2 cores
        dev.announce("train", CPU, dev.training_precision("off", CPU))
    finally:
        torch.set_num_threads(threads)
    assert capsys.readouterr().err.splitlines() == [
        "petseg train: bf16 autocast (auto: this CPU has AMX-BF16), 2 threads",
        "petseg train: fp32 (train.amp: off), 1 thread"]


def test_autocast_on_the_cpu_computes_in_bf16_and_off_in_fp32():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    bf16, fp32 = dev.Precision("bf16", "test"), dev.Precision("fp32", "test")
    with dev.autocast(CPU, bf16):
        assert conv(x).dtype == torch.bfloat16
    with dev.autocast(CPU, fp32):
        assert conv(x).dtype == torch.float32
    assert not dev.grad_scaler(CPU, bf16).is_enabled()  # bf16 needs no loss scaling


def test_cpu_description_names_the_features_that_matter(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 "
                       "amx_tile\n\nprocessor\t: 1\nmodel name\t: Test CPU 9000\n")
    real_path = dev.Path
    monkeypatch.setattr(dev, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert dev.cpu_description() == "Test CPU 9000 (AVX2, AVX-512, AVX512-BF16, AMX-BF16)"
    cpuinfo.write_text("model name\t: Old CPU\nflags\t\t: fpu sse2\n")
    assert dev.cpu_description() == "Old CPU (none of AVX2, AVX-512, AVX512-BF16, AMX-BF16)"
    # a brand-only model name: the family and model numbers tell a Zen 4 (25) from a Zen 5 (26)
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
                       "flags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\ncpu family\t: 26\n")
    assert dev.cpu_description() == "AMD EPYC, family 25 model 17 (AVX2, AVX-512, AVX512-BF16)"


@pytest.mark.parametrize("written, expected", [("on", "on"), ("off", "off"), ("auto", "auto"), ("'on'", "on")])
def test_a_bare_on_or_off_from_dvc_exp_run_set_is_the_setting(tmp_path, written, expected):
    text = (REPO / "params.yaml").read_text().replace("  amp: auto ", f"  amp: {written} ", 1)
    assert yaml.safe_load(text)["train"]["amp"] in (True, False, "auto", "on")  # what PyYAML makes of it
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_params(path).train.amp == expected
