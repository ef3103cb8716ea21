"""Helpers for training on a tf.distribute cluster (the Trainer takes any strategy).

``embedding_partitioner(min_rows, max_shards)`` is a ``variable_partitioner`` for
``tf.distribute.ParameterServerStrategy`` that splits each variable with at least ``min_rows`` rows (the
id embedding tables and their optimizer slots) into up to ``max_shards`` row shards, one per parameter
server, and leaves small variables (MLP kernels, biases) whole: a lookup then reads only the shards
holding the batch's rows, while dense layers never pay for re-assembling a split kernel.

``in_process_cluster(num_workers, num_ps)`` starts a cluster of gRPC servers on loopback inside this
process (for tests and examples; a real cluster runs one server per machine from TF_CONFIG).
"""

from __future__ import annotations

import os
import socket
from typing import Callable

import tensorflow as tf


def embedding_partitioner(min_rows: int, max_shards: int) -> Callable:
    """A variable partitioner: ``[min(max_shards, rows), 1, ...]`` for variables of >= ``min_rows`` rows."""
    if min_rows < 1 or max_shards < 1:
        raise ValueError(f"need min_rows >= 1 and max_shards >= 1, got {min_rows}, {max_shards}")

    def partitioner(shape: tf.TensorShape, dtype) -> list[int]:
        rows = int(shape[0]) if shape.rank else 0
        shards = min(max_shards, rows) if rows >= min_rows else 1
        return [shards] + [1] * (shape.rank - 1) if shape.rank else []

    return partitioner


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def in_process_cluster(num_workers: int, num_ps: int) -> tf.distribute.cluster_resolver.ClusterResolver:
    """Starts ``num_workers`` worker and ``num_ps`` parameter-server gRPC servers on 127.0.0.1 in this
    process; returns the resolver a ``ParameterServerStrategy`` coordinator connects with."""
    cluster = tf.train.ClusterSpec({"worker": [f"127.0.0.1:{_free_port()}" for _ in range(num_workers)],
                                    "ps": [f"127.0.0.1:{_free_port()}" for _ in range(num_ps)]})
    # In-process servers share this machine's cores: with fewer inter-op threads than workers + 1, the
    # workers' blocking ops can starve each other and the cluster deadlocks (TensorFlow's PS tutorial).
    config = tf.compat.v1.ConfigProto()
    config.inter_op_parallelism_threads = max(num_workers + 1, os.cpu_count() or 1)
    for job, count in (("worker", num_workers), ("ps", num_ps)):
        for index in range(count):
            tf.distribute.Server(cluster, job_name=job, task_index=index, protocol="grpc", config=config,
                                 start=True)
    return tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, rpc_layer="grpc")
