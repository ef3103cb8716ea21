"""DSSM on MovieLens-100K with ParameterServerStrategy: an in-process cluster of 2 workers and 2 parameter
servers on loopback; id tables sharded over the servers. Prints losses, the shards' devices and
Recall@50 against most-popular as JSON."""

import json

import tower_zoo  # noqa: F401  (legacy Keras)
import tensorflow as tf

from tower_zoo.data import leave_last_out, movielens_100k
from tower_zoo.runs import evaluate_split
from tower_zoo.training import Trainer
from tower_zoo.training.distribution import embedding_partitioner, in_process_cluster

strategy = tf.distribute.ParameterServerStrategy(in_process_cluster(num_workers=2, num_ps=2),
                                                 variable_partitioner=embedding_partitioner(512, 2))
split = leave_last_out(movielens_100k())
with strategy.scope():
    model = tower_zoo.create_model("dssm", split.data.feature_spec)
history = Trainer(model, epochs=3, batch_size=512, seed=3, strategy=strategy).fit(split.examples("train"),
                                                                                  verbose=False)
table = model.user_tower.fields.categorical_table.embeddings  # user id, age, gender, occupation, zip rows
reports = evaluate_split(model, split, ks=(50,), use_scann=False)
print(json.dumps({"loss": [h["loss"] for h in history],
                  "table_type": type(table).__name__,
                  "shard_devices": [v.device for v in getattr(table, "variables", [table])],
                  "shard_rows": [int(v.shape[0]) for v in getattr(table, "variables", [table])],
                  "recall@50": reports["model"].metrics["exact"]["recall@50"],
                  "popular_recall@50": reports["popularity"].metrics["exact"]["recall@50"]}))
