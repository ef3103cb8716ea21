"""The cascade (retrieval -> pre-ranking -> ranking) simulated on real data, and the training it enables."""

from tower_zoo.cascade.simulation import CandidateLists, CascadeSimulation, pair_scores

__all__ = ["CandidateLists", "CascadeSimulation", "pair_scores"]
