import os
import subprocess
import sys


def _run(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_tensorflow_imported_first_with_keras3_is_refused():
    result = _run("import tensorflow\nimport tower_zoo")
    assert result.returncode != 0
    assert "tower_zoo needs TensorFlow's legacy Keras 2" in result.stderr
    assert "Import tower_zoo before tensorflow" in result.stderr


def test_importing_tower_zoo_first_selects_legacy_keras():
    result = _run("import tower_zoo, tensorflow as tf, os\n"
                  "print(tf.keras.__name__, os.environ['TF_USE_LEGACY_KERAS'])")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["tf_keras.api._v2.keras", "1"]
