"""One worker of a two-worker MultiWorkerMirroredStrategy run on loopback (TF_CONFIG set by the caller),
or, with argument "single", the single-device reference. Prints the weight checksum and losses as JSON."""

import json
import sys

import tower_zoo  # noqa: F401  (legacy Keras)
import numpy as np
import tensorflow as tf

from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.training import Trainer

strategy = None if sys.argv[1] == "single" else tf.distribute.MultiWorkerMirroredStrategy()
split = leave_last_out(synthetic_interactions(num_users=120, num_items=60, interactions_per_user=10))
scope = strategy.scope() if strategy else tf.distribute.get_strategy().scope()
with scope:
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
examples = {k: v[:1024] for k, v in split.examples("train").items()}
history = Trainer(model, epochs=2, batch_size=64, seed=5, strategy=strategy).fit(examples, verbose=False)
weights = np.concatenate([w.reshape(-1) for w in model.get_weights()])
print(json.dumps({"weights": weights.tolist(), "loss": [h["loss"] for h in history]}))
