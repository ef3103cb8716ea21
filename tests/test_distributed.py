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
