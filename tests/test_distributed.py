import json
import os
import subprocess
import sys

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


def test_mirrored_strategy_on_two_devices_equals_single_device():
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "distributed_equality.py"), "2"],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["max_weight_difference"] < 1e-4, report
    for single, mirrored in zip(report["single_loss"], report["mirrored_loss"]):
        assert abs(single - mirrored) < 1e-4 * max(1.0, abs(single))
    assert report["single_loss"][1] < report["single_loss"][0]


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_multi_worker_mirrored_strategy_two_local_workers_equals_single_device():
    import numpy as np

    script = os.path.join(SCRIPTS, "multi_worker.py")
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, script, "worker"], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    try:
        outputs = [worker.communicate(timeout=500) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    single = subprocess.run([sys.executable, script, "single"], capture_output=True, text=True, timeout=500,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    reference = json.loads(single.stdout.strip().splitlines()[-1])
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
        report = json.loads(stdout.strip().splitlines()[-1])
        assert np.max(np.abs(np.array(report["weights"]) - np.array(reference["weights"]))) < 1e-4
        np.testing.assert_allclose(report["loss"], reference["loss"], rtol=1e-5)


def test_parameter_server_strategy_shards_id_tables_and_learns():
    """An in-process cluster (2 workers, 2 parameter servers on loopback) trains DSSM through Keras fit with
    the id tables row-sharded over both servers, and beats most-popular on ML-100K."""
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "parameter_server.py")], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["table_type"] == "ShardedVariable"
    assert sorted(d.split("/device")[0] for d in report["shard_devices"]) == [
        "/job:ps/replica:0/task:0", "/job:ps/replica:0/task:1"]
    assert sum(report["shard_rows"]) == 945 + 9 + 4 + 23 + 384 and min(report["shard_rows"]) > 600
    assert report["loss"][-1] < report["loss"][0]
    assert report["recall@50"] > 1.5 * report["popular_recall@50"], report
