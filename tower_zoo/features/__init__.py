"""Keras layers that turn encoded features (see ``tower_zoo.data.schema.spec``) into tower inputs."""

from tower_zoo.features.embedding import (FieldEmbedding, MaskedMeanPooling, NumericEmbedding,
                                          PooledSequenceEmbedding, SequenceEmbedding)

__all__ = ["FieldEmbedding", "MaskedMeanPooling", "NumericEmbedding", "PooledSequenceEmbedding", "SequenceEmbedding"]
