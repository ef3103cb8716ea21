"""Shared building blocks that models compose."""

from tower_zoo.layers.attention import MultiHeadTargetAttention, masked_attention_pool
from tower_zoo.layers.context_encoder import ContextEncoder, TransformerBlock
from tower_zoo.layers.dropout import StepSeededDropout
from tower_zoo.layers.light_se import LightSE
from tower_zoo.layers.mlp import MLP
from tower_zoo.layers.quantizer import ResidualQuantizer
from tower_zoo.layers.similarity import L2Normalize, Temperature, max_similarity
from tower_zoo.layers.tower import MLPTower

__all__ = ["masked_attention_pool", "MultiHeadTargetAttention", "ContextEncoder", "TransformerBlock",
           "ResidualQuantizer", "LightSE", "StepSeededDropout", "MLP", "MLPTower", "L2Normalize", "Temperature",
           "max_similarity"]
