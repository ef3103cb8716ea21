"""Vocabularies and the FeatureSpec of a scanned dataset, and the encoders that apply them.

Id vocabularies come from the interaction counts of the scan plus every id of the side table (with a count
of 0, so a cold item has a row whenever ``min_count`` is 0, the default for ids); side features come from
their tables (``side_tables``). The spec's order: user_id, item_id, the user features, the item features,
then the history (over the item vocabulary, with the item id's hash buckets).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from tower_zoo.data.prepare.interaction_rows import ScanResult
from tower_zoo.data.prepare.side_tables import EncodedSideTable, empty_side_table, encode_side_table
from tower_zoo.data.prepare.vocab import ValueCounter, VocabularyEncoder, as_python_vocabulary, select_vocabulary
from tower_zoo.data.schema.dataset_schema import DatasetSchema
from tower_zoo.data.schema.files import read_side_table
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import CategoricalFeature, FeatureSpec, SequenceFeature


@dataclasses.dataclass
class Encoders:
    """What turns raw interactions into codes: id encoders, encoded side tables, the spec."""

    users: VocabularyEncoder
    items: VocabularyEncoder
    user_table: EncodedSideTable
    item_table: EncodedSideTable
    spec: FeatureSpec


def _side(schema: DatasetSchema, side: str, family: str, counts: pa.Table):
    """(id vocabulary, side features, encoded table) of one side."""
    role = f"{side}_id"
    counter = ValueCounter()
    counter.add(counts["values"].combine_chunks(), counts["counts"].to_numpy())
    if schema.table(side) is None:
        specs, table = [], empty_side_table(side, counts["values"].combine_chunks())
    else:
        raw_table, origins = read_side_table(schema, side, family)
        specs, table = encode_side_table(schema, side, raw_table, origins)
        counter.add(table.ids, np.zeros(len(table.ids), np.int64))  # every table id is a candidate
    return select_vocabulary(counter.counts(), schema.id_vocab[role]), specs, table


def build_encoders(schema: DatasetSchema, scanned: ScanResult) -> Encoders:
    """Id vocabularies (interaction counts plus side-table ids), side tables and the FeatureSpec."""
    user_vocab, user_specs, user_table = _side(schema, "user", scanned.families["user_id"], scanned.user_counts)
    item_vocab, item_specs, item_table = _side(schema, "item", scanned.families["item_id"], scanned.item_counts)
    user_options, item_options = schema.id_vocab["user_id"], schema.id_vocab["item_id"]
    item_values = as_python_vocabulary(item_vocab)
    features = [CategoricalFeature("user_id", "user", as_python_vocabulary(user_vocab), user_options.embedding_dim,
                                   user_options.hash_buckets),
                CategoricalFeature("item_id", "item", item_values, item_options.embedding_dim,
                                   item_options.hash_buckets),
                *user_specs, *item_specs]
    if schema.history_length:
        features.append(SequenceFeature(HISTORY_FEATURE, "user", item_values, schema.history_length,
                                        hash_buckets=item_options.hash_buckets))
    return Encoders(VocabularyEncoder(user_vocab, user_options.hash_buckets),
                    VocabularyEncoder(item_vocab, item_options.hash_buckets), user_table, item_table,
                    FeatureSpec(tuple(features)))
