"""Trains DSSM on synthetic data on one device and with MirroredStrategy over two logical CPU devices;
prints the largest weight difference and both losses as JSON. Run as a subprocess (device setup must
precede any TensorFlow work)."""

import json
import sys

import tower_zoo  # noqa: F401  (legacy Keras)
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from tower_zoo.data import leave_last_out, synthetic_interactions  # noqa: E402
from tower_zoo.training import Trainer  # noqa: E402


def train(strategy):
    split = leave_last_out(synthetic_interactions(num_users=120, num_items=60, interactions_per_user=10))
    scope = strategy.scope() if strategy else tf.distribute.get_strategy().scope()
    with scope:
        model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
    # A batch size that divides the data evenly, so every global batch splits into equal halves.
    examples = {k: v[:1024] for k, v in split.examples("train").items()}
    history = Trainer(model, epochs=int(sys.argv[1]), batch_size=64, seed=5, strategy=strategy).fit(
        examples, verbose=False)
    return model.get_weights(), [h["loss"] for h in history]


single, single_loss = train(None)
mirrored, mirrored_loss = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
difference = max(float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored))
print(json.dumps({"max_weight_difference": difference, "single_loss": single_loss,
                  "mirrored_loss": mirrored_loss}))
