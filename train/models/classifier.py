"""The glaucoma classifiers: ResNet50 with Zhao et al.'s heads (their Figure 1).

- ``gap``:  global average pooling of the last stage (2048 channels) -> linear;
- ``2gap``: pooled last two stages (1024 + 2048), concatenated -> linear;
- ``3gap``: pooled last three stages (512 + 1024 + 2048) -> linear;
- ``cc``:   a 1x1 convolution compressing the last stage's channels (2048 -> 256, BN, ReLU)
            before pooling -> linear.
Two-class logits (cross-entropy). Where one stage's features are pooled straight into the linear
head (``gap``, ``cc``), ``class_activation_map`` gives Zhou et al.'s CAM: the head applied at each
position, so its spatial mean is the logit. ``weights="imagenet"`` loads torchvision's ImageNet weights
(needs the internet); the default ``None`` starts from scratch.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from .registry import register_model

_STAGE_CHANNELS = {"layer2": 512, "layer3": 1024, "layer4": 2048}


class ResNetClassifier(nn.Module):
    output_activation = "softmax"

    def __init__(self, head: str, num_classes: int = 2, weights: str | None = None, compressed: int = 256):
        super().__init__()
        backbone = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2 if weights == "imagenet" else None)
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4,
        )  # fmt: skip
        self.pooled = {"gap": ("layer4",), "2gap": ("layer3", "layer4"), "3gap": ("layer2", "layer3", "layer4"),
                       "cc": ("layer4",)}[head]  # fmt: skip
        self.head_kind = head
        self.compress = (
            nn.Sequential(nn.Conv2d(2048, compressed, 1, bias=False), nn.BatchNorm2d(compressed), nn.ReLU(inplace=True))
            if head == "cc"
            else nn.Identity()
        )
        features = compressed if head == "cc" else sum(_STAGE_CHANNELS[s] for s in self.pooled)
        self.fc = nn.Linear(features, num_classes)

    @property
    def has_cam(self) -> bool:
        """Whether the head is linear in one stage's features, so a class activation map is exact."""
        return self.pooled == ("layer4",)

    def stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.layer1(self.stem(x))
        stages = {}
        stages["layer2"] = x = self.layer2(x)
        stages["layer3"] = x = self.layer3(x)
        stages["layer4"] = self.compress(self.layer4(x))
        return stages

    def head(self, stages: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(torch.cat([stages[s].mean(dim=(2, 3)) for s in self.pooled], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """P(glaucoma) = softmax(logits)[:, 1]."""
        return self.forward(x).softmax(dim=1)[:, 1]

    def class_activation_map(self, stages: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, h, w): the glaucoma-minus-normal logit each position of the last stage votes for.

        Its spatial mean is the logit difference, so sigmoid(mean) is ``predict``'s probability. Written
        as a product and a channel sum, not a convolution, so INT8 quantisation leaves it alone.
        """
        if not self.has_cam:
            raise ValueError(f"the {self.head_kind} head pools several stages: no exact class activation map")
        weight = (self.fc.weight[1] - self.fc.weight[0]).view(1, -1, 1, 1)
        return (stages["layer4"] * weight).sum(dim=1) + (self.fc.bias[1] - self.fc.bias[0])


@register_model
def resnet50_gap(*, num_classes: int = 2, weights: str | None = None) -> ResNetClassifier:
    return ResNetClassifier("gap", num_classes, weights)


@register_model
def resnet50_2gap(*, num_classes: int = 2, weights: str | None = None) -> ResNetClassifier:
    return ResNetClassifier("2gap", num_classes, weights)


@register_model
def resnet50_3gap(*, num_classes: int = 2, weights: str | None = None) -> ResNetClassifier:
    return ResNetClassifier("3gap", num_classes, weights)


@register_model
def resnet50_cc(*, num_classes: int = 2, weights: str | None = None, compressed: int = 256) -> ResNetClassifier:
    return ResNetClassifier("cc", num_classes, weights, compressed)
