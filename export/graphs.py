"""The modules that become ONNX graphs: each model with its output activation, and the ensemble."""

from __future__ import annotations

import torch
from torch import nn


class Activated(nn.Module):
    """A model and its output activation (``predict``): the graph the runtime runs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.predict(image)


class EnsembleGraph(nn.Module):
    """All members in one graph: (full image, disc crop) -> (mean probability, each member's).

    The ensemble's answer is the mean of the members' softmax probabilities (the seed merges
    the members by averaging).
    """

    def __init__(self, members: list[tuple[str, nn.Module, str]]):
        super().__init__()
        self.names = [name for name, _, _ in members]
        self.views = [view for _, _, view in members]
        self.members = nn.ModuleList(model for _, model, _ in members)

    def forward(self, full: torch.Tensor, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        each = [m.predict(full if view == "full" else crop) for m, view in zip(self.members, self.views)]
        # The mean is taken from the members' tensors, not from the stacked output: a graph output that
        # also feeds another node trips the FP16 converter (it types the consumer wrongly).
        return sum(each) / len(each), torch.stack(each, dim=1)


def ensemble_graph(trained_members) -> EnsembleGraph:
    """The ensemble of a classify run's members (``fundusrt.train.runs.TrainedMember``)."""
    return EnsembleGraph([(m.member.name, m.model, m.member.view) for m in trained_members])


def reference_graphs(*, classifier, segmenter, locator) -> dict:
    """The PyTorch modules behind each bundle graph, from three run folders."""
    from fundusrt.train.runs import load_run

    return {
        "locator": Activated(load_run(locator, "locate")[1][0].model),
        "segmenter": Activated(load_run(segmenter, "segment")[1][0].model),
        "classifier": ensemble_graph(load_run(classifier, "classify")[1]),
    }
