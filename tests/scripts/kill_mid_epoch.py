"""Trains DSSM with checkpoints into argv[1] with every random state training has: mixed (in-batch +
sampled) and hard negatives, dropout and positive down-sampling. With argv[2] == "kill" it SIGKILLs
itself in the middle of epoch 2 (after epoch 1's checkpoint, 3 steps into epoch 2). With "resume" or
"full" it trains to 3 epochs and prints every weight tensor."""

import json
import os
import signal
import sys

import tower_zoo  # noqa: F401
import numpy as np
import tensorflow as tf

from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.training import Trainer


class KillMidEpoch(tf.keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.params and self._epoch == 1 and batch >= 2:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


checkpoint_dir, mode = sys.argv[1], sys.argv[2]
split = leave_last_out(synthetic_interactions(num_users=120, num_items=60, interactions_per_user=10))
model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8), dropout=0.3)
examples = split.examples("train")
table, _ = split.candidates()
hard = np.random.default_rng(0).integers(0, len(table["item_id"]), size=(len(examples["item_id"]), 2))
trainer = Trainer(model, epochs=3, batch_size=64, seed=7, negatives="mixed", num_global_negatives=8,
                  hard_negatives=2, hard_rank_range=(1, 40), downsample_threshold=0.01, steps_per_execution=1,
                  checkpoint_dir=checkpoint_dir if mode != "full" else None)
history = trainer.fit(examples, item_table=table, hard_negatives=hard, verbose=False,
                      callbacks=[KillMidEpoch()] if mode == "kill" else [])
print(json.dumps({"epochs_run": [h["epoch"] for h in history],
                  "weights": {v.name: v.numpy().tolist() for v in model.weights}}))
