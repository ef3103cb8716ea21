"""Trains DSSM with checkpoints into argv[1]; with argv[2] == "kill", SIGKILLs itself in the middle of
epoch 2 (after epoch 1's checkpoint). With "resume" or "full", trains to 3 epochs and prints the weights."""

import json
import os
import signal
import sys

import tower_zoo  # noqa: F401
import numpy as np

from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.training import Trainer

checkpoint_dir, mode = sys.argv[1], sys.argv[2]
split = leave_last_out(synthetic_interactions(num_users=120, num_items=60, interactions_per_user=10))
model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
trainer = Trainer(model, epochs=3, batch_size=64, seed=7, checkpoint_dir=checkpoint_dir if mode != "full" else None)
if mode == "kill":
    step, steps_seen = trainer._train_step, [0]

    def step_then_die(batch):
        steps_seen[0] += 1
        if int(trainer.epoch.numpy()) == 1 and steps_seen[0] > 20:   # epoch 1 saved; now mid-epoch 2
            os.kill(os.getpid(), signal.SIGKILL)
        return step(batch)

    trainer._train_step = step_then_die
history = trainer.fit(split.examples("train"), verbose=False)
weights = np.concatenate([w.reshape(-1) for w in model.get_weights()])
print(json.dumps({"epochs_run": [h["epoch"] for h in history], "weights": weights.tolist()}))
