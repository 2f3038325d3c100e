"""Strategies whose model *is* their structure: training runs a BlockNetwork, so freezing is exact."""
from __future__ import annotations

from abc import abstractmethod

from ..backbones import Backbone
from ..structure.graph import SharingStructure
from ..structure.network import BlockNetwork
from .base import Strategy


class StructuredStrategy(Strategy):
    """Subclasses lay out blocks in `make_structure`; the model and its export follow from it."""

    @abstractmethod
    def make_structure(self, backbone: Backbone) -> SharingStructure:
        """Lay the strategy's blocks out for this backbone."""

    def new_structure(self, backbone: Backbone) -> SharingStructure:
        return SharingStructure(strategy=self.name, config={**self.config, "backbone": backbone.name},
                                tasks=self.problem.tasks, input_shape=self.problem.input_shape)

    def build(self, backbone: Backbone, state: dict | None = None) -> BlockNetwork:
        return BlockNetwork(self.make_structure(backbone))

    def structure(self, model: BlockNetwork):
        return model.structure, model.state_dict()
