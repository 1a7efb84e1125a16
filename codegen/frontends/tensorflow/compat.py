"""Import TensorFlow and tf_slim on today's TensorFlow.

tf_slim 1.1 imports `tf_keras.legacy_tf_layers`, which tf-keras >= 2.16 only ships as
`tf_keras.src.legacy_tf_layers`. We register the module under its old name before the
first import of tf_slim; nothing else is patched.

`import_tf_core()` is the fast path of `codegen to-ir`: `import tensorflow` spends ~3 s
building the public API (Keras, tf.data, distribute, ...), while reading a graph and a
checkpoint needs only a few `tensorflow.python` modules (~0.7 s). It imports those under
a bare package object; `import_tf()` later replaces it with the real package, reusing the
submodules already loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType, SimpleNamespace

from codegen.errors import InputError


def import_tf() -> ModuleType:
    """Import TensorFlow quietly, with a clear message when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if getattr(sys.modules.get("tensorflow"), _CORE_MARK, False):
        del sys.modules["tensorflow"]  # the bare package of import_tf_core(): load the real one
    try:
        with _quiet_native_stderr():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
            import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(
            "TensorFlow is not installed; install the 'tf' extra: pip install 'codegen[tf]'"
        ) from exc
    tf.get_logger().setLevel("ERROR")
    return tf


_CORE_MARK = "_codegen_core_only"


def import_tf_core() -> SimpleNamespace:
    """The parts of TensorFlow that load a graph and read a checkpoint, without its public API.

    Returns Graph, GraphDef, MetaGraphDef, import_graph_def, CheckpointReader, Session and
    errors. Uses the full package when it is already imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                "TensorFlow is not installed; install the 'tf' extra: pip install 'codegen[tf]'"
            )
        package = ModuleType("tensorflow")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        setattr(package, _CORE_MARK, True)
        sys.modules["tensorflow"] = package
    with _quiet_native_stderr(always=True):
        from tensorflow.core.framework.graph_pb2 import GraphDef
        from tensorflow.core.protobuf.meta_graph_pb2 import MetaGraphDef
        from tensorflow.python.client.session import Session
        from tensorflow.python.framework import errors, importer, ops
        from tensorflow.python.training.py_checkpoint_reader import NewCheckpointReader
    return SimpleNamespace(Graph=ops.Graph, GraphDef=GraphDef, MetaGraphDef=MetaGraphDef,
                           import_graph_def=importer.import_graph_def,
                           CheckpointReader=NewCheckpointReader, Session=Session, errors=errors)


@contextmanager
def _quiet_native_stderr(always: bool = False) -> Iterator[None]:
    """Silence file descriptor 2 for the first import of TensorFlow only."""
    if "tensorflow" in sys.modules and not always:
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
