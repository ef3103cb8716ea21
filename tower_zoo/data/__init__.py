"""Datasets as the data flows: schema/ (what a dataset is), prepare/ (the streaming pass), store/ (a prepared
directory on disk), read/ (prepared-data readers), builtin/ (built-in datasets) and memory/ (the in-memory path).

The names below are re-exported so that ``from tower_zoo.data import X`` keeps working."""

from tower_zoo.data.memory.dataset import InteractionData, build_interaction_data
from tower_zoo.data.schema.spec import CategoricalFeature, FeatureSpec, NumericFeature, OOVCounter, SequenceFeature
from tower_zoo.data.read.pipeline import make_dataset
from tower_zoo.data.memory.splits import RetrievalSplit, leave_last_out, time_split
from tower_zoo.data.memory.exposure_split import ExposureSplit, random_exposure_split
from tower_zoo.data.builtin.synthetic import synthetic_interactions
from tower_zoo.data.builtin.catalog import list_datasets, load_dataset
from tower_zoo.data.builtin.movielens import movielens_100k, movielens_100k_wheel_path, movielens_1m
from tower_zoo.data.schema.dataset_schema import DatasetSchema, SchemaError
from tower_zoo.data.schema.loading import load_schema
from tower_zoo.data.builtin.resolve import builtin_schema, resolve_schema
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.read.shard_source import ShardExampleSource
