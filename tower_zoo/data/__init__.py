"""Datasets, the FeatureSpec schema, splits and tf.data pipelines."""

from tower_zoo.data.dataset import InteractionData, build_interaction_data
from tower_zoo.data.spec import (CategoricalFeature, FeatureSpec, NumericFeature, OOVCounter,
                                 SequenceFeature)
from tower_zoo.data.pipeline import make_dataset
from tower_zoo.data.splits import RetrievalSplit, leave_last_out, time_split
from tower_zoo.data.exposure_split import ExposureSplit, random_exposure_split
from tower_zoo.data.synthetic import synthetic_interactions
from tower_zoo.data.catalog import list_datasets, load_dataset
from tower_zoo.data.movielens import movielens_100k, movielens_100k_wheel_path, movielens_1m
from tower_zoo.data.schema import DatasetSchema, SchemaError, load_schema
from tower_zoo.data.builtin import builtin_schema, resolve_schema
from tower_zoo.data.prepared import PreparedDataset
from tower_zoo.data.shard_source import ShardExampleSource
