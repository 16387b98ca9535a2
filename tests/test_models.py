"""Both models: output shapes and parameter counts, the counts derived by hand from the architecture."""

from __future__ import annotations

import pytest
import torch

from petseg.models.build import build_model, count_parameters


def conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def bn(c):
    return 2 * c


def double_conv(cin, cout):
    return conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)


def unet_parameters(c):
    w = [c * 2**i for i in range(5)]
    encoder = double_conv(3, w[0]) + sum(double_conv(w[i], w[i + 1]) for i in range(3))
    bottleneck = double_conv(w[3], w[4])
    decoder = sum(conv(w[i + 1], w[i], 2, bias=True) + double_conv(2 * w[i], w[i]) for i in range(4))
    return encoder + bottleneck + decoder + conv(w[0], 1, 1, bias=True)


def resnet34_unet_parameters(d):
    def basic_block(cin, cout, stride):
        projection = conv(cin, cout, 1) + bn(cout) if stride != 1 or cin != cout else 0
        return conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout) + projection

    encoder, cin = conv(3, 64, 7) + bn(64), 64
    for cout, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        encoder += basic_block(cin, cout, stride) + (blocks - 1) * basic_block(cout, cout, 1)
        cin = cout
    assert encoder == 21_284_672  # torchvision's resnet34 (21,797,672) without its fc layer (513,000)
    bottleneck = conv(512, 256, 3) + bn(256)
    decoder, channels = 0, 256
    for skip in (512, 256, 128, 64):
        cat = channels + skip
        decoder += conv(cat, cat // 2, 2, bias=True) + double_conv(cat // 2, d)
        channels = d
    return encoder + bottleneck + decoder + conv(d, d, 2, bias=True) + conv(d, 1, 1, bias=True)


@pytest.mark.parametrize("name, arch, expected", [
    ("unet", {"base_channels": 64}, unet_parameters(64)),
    ("unet", {"base_channels": 16}, unet_parameters(16)),
    ("resnet34_unet", {"decoder_channels": 32}, resnet34_unet_parameters(32)),
])
def test_parameter_counts(name, arch, expected):
    assert count_parameters(build_model(name, arch)) == expected


def test_unet64_has_the_classic_parameter_count():
    assert unet_parameters(64) == 31_037_633  # the BatchNorm UNet of the literature, one output channel


@pytest.mark.parametrize("name, arch", [("unet", {"base_channels": 8}), ("resnet34_unet", {"decoder_channels": 16})])
@pytest.mark.parametrize("height, width", [(64, 64), (96, 160)])
def test_logits_have_the_input_size(name, arch, height, width):
    model = build_model(name, arch).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert out.shape == (2, 1, height, width)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
