"""Losses of the three tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice, per image and channel (disc, cup), averaged; ``eps`` smooths empty planes."""
    prob = torch.sigmoid(logits)
    dims = (2, 3)
    intersection = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return (1.0 - (2.0 * intersection + eps) / (total + eps)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 0.0) -> torch.Tensor:
    """Soft Dice on disc and cup, as Zhao et al. train CE-Net; optionally plus ``bce_weight`` x BCE
    (it steadies the first epochs of a network trained from scratch)."""
    loss = soft_dice_loss(logits, target)
    if bce_weight:
        loss = loss + bce_weight * F.binary_cross_entropy_with_logits(logits, target)
    return loss


def bi_distance_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the sigmoid output and B^N, as Meyer et al. train their UNet."""
    return F.mse_loss(torch.sigmoid(logits), target)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)
