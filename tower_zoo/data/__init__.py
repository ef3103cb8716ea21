"""Datasets, the FeatureSpec schema, splits and tf.data pipelines."""

from tower_zoo.data.dataset import InteractionData, build_interaction_data
from tower_zoo.data.spec import (CategoricalFeature, FeatureSpec, NumericFeature, OOVCounter,
                                 SequenceFeature)
