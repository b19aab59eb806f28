"""CE-Net (Gu et al., IEEE TMI 2019) for joint optic disc / cup segmentation.

Structure as Gu et al. describe it: a ResNet34 encoder, the dense atrous
convolution (DAC) block and the residual multi-kernel pooling (RMP) block on the stride-32
map, four decoder blocks with additive skips, and a transposed-convolution head. Outputs two
logit planes, disc (including the cup) and cup; ``predict`` applies a sigmoid per plane.
The input side must be a multiple of 32 and at least 192 (RMP pools with kernels up to 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet34_Weights, resnet34

from .registry import register_model


class DACBlock(nn.Module):
    """Four cascaded atrous branches sharing their convolutions (3x3 d1, d3, d5 and a 1x1), summed with x."""

    def __init__(self, channels: int):
        super().__init__()
        self.dilate1 = nn.Conv2d(channels, channels, 3, padding=1, dilation=1)
        self.dilate3 = nn.Conv2d(channels, channels, 3, padding=3, dilation=3)
        self.dilate5 = nn.Conv2d(channels, channels, 3, padding=5, dilation=5)
        self.conv1x1 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.dilate1(x)
        b1 = F.relu(d1)
        b2 = F.relu(self.conv1x1(self.dilate3(x)))
        d31 = self.dilate3(d1)
        b3 = F.relu(self.conv1x1(d31))
        b4 = F.relu(self.conv1x1(self.dilate5(d31)))
        return x + b1 + b2 + b3 + b4  # no normalisation: an FP16 overflow candidate (see export)


class RMPBlock(nn.Module):
    """Max-pool with kernels 2, 3, 5, 6 (stride = kernel), one shared 1x1 conv to 1 channel each,
    bilinear upsampling back, concatenated with x: C -> C + 4 channels."""

    kernels = (2, 3, 5, 6)

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        levels = [
            F.interpolate(self.conv(F.max_pool2d(x, k, stride=k)), size=size, mode="bilinear", align_corners=False)
            for k in self.kernels
        ]
        return torch.cat(levels + [x], dim=1)


class DecoderBlock(nn.Sequential):
    """1x1 conv in -> in/4, BN, ReLU; 3x3 transposed conv stride 2, BN, ReLU; 1x1 conv in/4 -> out, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        mid = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        )  # fmt: skip


class CENet(nn.Module):
    output_activation = "sigmoid"
    min_size, size_multiple = 192, 32

    def __init__(self, num_classes: int = 2, weights: str | None = None):
        super().__init__()
        encoder = resnet34(weights=ResNet34_Weights.IMAGENET1K_V1 if weights == "imagenet" else None)
        self.stem = nn.Sequential(encoder.conv1, encoder.bn1, encoder.relu, encoder.maxpool)
        self.encoder1, self.encoder2, self.encoder3, self.encoder4 = (
            encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4,
        )  # fmt: skip
        self.dac = DACBlock(512)
        self.rmp = RMPBlock(512)
        self.decoder4 = DecoderBlock(516, 256)
        self.decoder3 = DecoderBlock(256, 128)
        self.decoder2 = DecoderBlock(128, 64)
        self.decoder1 = DecoderBlock(64, 64)
        self.head = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, num_classes, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if x.shape[-2] != side or side < self.min_size or side % self.size_multiple:
            raise ValueError(f"CE-Net takes square inputs, side >= 192 and a multiple of 32; got {tuple(x.shape[-2:])}")
        e1 = self.encoder1(self.stem(x))
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        e4 = self.rmp(self.dac(self.encoder4(e3)))
        d4 = self.decoder4(e4) + e3
        d3 = self.decoder3(d4) + e2
        d2 = self.decoder2(d3) + e1
        d1 = self.decoder1(d2)
        return self.head(d1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x))


@register_model
def cenet_resnet34(*, num_classes: int = 2, weights: str | None = None) -> CENet:
    return CENet(num_classes, weights)
