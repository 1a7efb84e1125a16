"""Import TensorFlow and tf_slim on today's TensorFlow.

tf_slim 1.1 imports `tf_keras.legacy_tf_layers`, which tf-keras >= 2.16 only ships as
`tf_keras.src.legacy_tf_layers`. We register the module under its old name before the
first import of tf_slim; nothing else is patched.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from codegen.errors import InputError


def import_tf() -> ModuleType:
    """Import TensorFlow quietly, with a clear message when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet_native_stderr():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
            import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(
            "TensorFlow is not installed; install the 'tf' extra: pip install 'codegen[tf]'"
        ) from exc
    tf.get_logger().setLevel("ERROR")
    return tf


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for the first import of TensorFlow only."""
    if "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_slim() -> ModuleType:
    """Import tf_slim, aliasing tf_keras' legacy layers where tf_slim expects them."""
    import_tf()
    if "tf_keras.legacy_tf_layers" not in sys.modules:
        try:
            importlib.import_module("tf_keras.legacy_tf_layers")
        except ImportError:
            legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
            sys.modules["tf_keras.legacy_tf_layers"] = legacy
    import tf_slim

    return tf_slim
