"""tower_zoo: a TensorFlow/Keras model zoo of two-tower recommendation models.

TensorFlow Recommenders needs the legacy Keras 2 API (``tf_keras``). TensorFlow picks its
Keras implementation when it is first imported, so this module sets ``TF_USE_LEGACY_KERAS=1``
before importing TensorFlow, and refuses to run if TensorFlow was already imported with Keras 3.
"""

import os
import sys

_KERAS3_MESSAGE = (
    "tower_zoo needs TensorFlow's legacy Keras 2 (tf_keras), but TensorFlow was already imported "
    "with Keras 3 (tf.keras is {keras}). Import tower_zoo before tensorflow, or set the environment "
    "variable TF_USE_LEGACY_KERAS=1 before starting Python."
)

if "tensorflow" not in sys.modules:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
# TensorFlow's C++ start-up lines ("failed call to cuInit" on a machine without a GPU) are noise on every
# import and break the one-line error contract of the CLI; errors that matter surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402


def _check_legacy_keras() -> None:
    keras_module = getattr(tf.keras, "__name__", str(tf.keras))
    if not keras_module.startswith("tf_keras"):
        raise ImportError(_KERAS3_MESSAGE.format(keras=keras_module))


_check_legacy_keras()

from tower_zoo.registry import create_model, list_models, register_model, model_config_class  # noqa: E402,F401
from tower_zoo import models as _models  # noqa: E402,F401  (registers the built-in models)

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "register_model", "model_config_class", "__version__"]
