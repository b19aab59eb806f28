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
    """All members in one graph: (full image, disc crop) -> (mean probability, each member's, and the
    class activation maps of the members whose head allows one).

    The ensemble's answer is the mean of the members' softmax probabilities (Zhao et al. merge the
    members by averaging). ``heatmaps`` (N, K, h, w) holds the CAMs of ``heatmap_members``, in that
    order, at the last stage's resolution (a 32nd of the input): the evidence the runtime draws.
    """

    def __init__(self, members: list[tuple[str, nn.Module, str]]):
        super().__init__()
        self.names = [name for name, _, _ in members]
        self.views = [view for _, _, view in members]
        self.members = nn.ModuleList(model for _, model, _ in members)
        # member -> the view its class activation map covers, in the order of the ``heatmaps`` output
        self.heatmap_members = {name: view for name, model, view in members if getattr(model, "has_cam", False)}

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("probability", "members", "heatmaps") if self.heatmap_members else ("probability", "members")

    def forward(self, full: torch.Tensor, crop: torch.Tensor) -> tuple[torch.Tensor, ...]:
        each, maps = [], []
        for model, view in zip(self.members, self.views):
            stages = model.stages(full if view == "full" else crop)  # once per member: CAM and head share it
            each.append(model.head(stages).softmax(dim=1)[:, 1])
            if getattr(model, "has_cam", False):
                maps.append(model.class_activation_map(stages))
        # The mean is taken from the members' tensors, not from the stacked output: a graph output that
        # also feeds another node trips the FP16 converter (it types the consumer wrongly).
        answer = (sum(each) / len(each), torch.stack(each, dim=1))
        return (*answer, torch.stack(maps, dim=1)) if maps else answer


def ensemble_graph(trained_members) -> EnsembleGraph:
    """The ensemble of a classify run's members (``fundusrt.train.runs.TrainedMember``)."""
    return EnsembleGraph([(m.member.name, m.model, m.member.view) for m in trained_members])


def graph_module(task, trained_members) -> nn.Module:
    """The module a task's trained members become: the merged ensemble, or the one model activated."""
    return ensemble_graph(trained_members) if task.ensemble else Activated(trained_members[0].model)


def reference_graphs(runs: dict) -> dict:
    """The PyTorch modules behind each bundle graph, from the run folder of each (graph -> folder)."""
    from fundusrt.train.runs import load_run
    from fundusrt.train.tasks import BY_GRAPH

    return {graph: graph_module(BY_GRAPH[graph], load_run(run, BY_GRAPH[graph].name)[1]) for graph, run in runs.items()}
