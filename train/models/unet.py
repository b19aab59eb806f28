"""The locator: a UNet regressing the normalised bi-distance map B^N (Meyer et al. 2018).

Four down-sampling levels of two 3x3 conv + BN + ReLU, transposed-conv up-sampling with
concatenated skips, one output plane; ``predict`` applies the sigmoid (B^N lies in [0, 1]).
The input side must be a multiple of 16.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip


class UNet(nn.Module):
    output_activation = "sigmoid"
    size_multiple = 16

    def __init__(self, base: int = 32, depth: int = 4, in_channels: int = 3, out_channels: int = 1):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])])
        self.down.extend(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple:
            raise ValueError(f"the UNet takes sides that are multiples of 16; got {tuple(x.shape[-2:])}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.out(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x))


@register_model
def unet_locator(*, base: int = 32, depth: int = 4) -> UNet:
    return UNet(base=base, depth=depth)
