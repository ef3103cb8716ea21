"""Keras layers that turn encoded features (see ``tower_zoo.data.spec``) into tower inputs."""

from tower_zoo.features.embedding import (FieldEmbedding, MaskedMeanPooling, NumericEmbedding,
                                          PooledSequenceEmbedding, SequenceEmbedding)

__all__ = ["FieldEmbedding", "MaskedMeanPooling", "NumericEmbedding", "PooledSequenceEmbedding", "SequenceEmbedding"]
