"""Shared building blocks that models compose."""

from tower_zoo.layers.light_se import LightSE
from tower_zoo.layers.mlp import MLP
from tower_zoo.layers.similarity import L2Normalize, Temperature
from tower_zoo.layers.tower import MLPTower

__all__ = ["LightSE", "MLP", "MLPTower", "L2Normalize", "Temperature"]
