"""to-ir's light TensorFlow import (compat.import_tf_core) and the full import after it."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, time
from codegen.frontends.tensorflow.compat import import_tf, import_slim, import_tf_core
start = time.perf_counter()
core = import_tf_core()
light = time.perf_counter() - start
assert "keras" not in sys.modules and "tensorflow.python.data" not in sys.modules
graph = core.Graph()
tf = import_tf()  # the real package replaces the bare one, keeping the loaded submodules
assert tf.compat.v1.Session is core.Session and tf.Graph is core.Graph
slim = import_slim()
assert import_tf_core().Graph is tf.Graph
print(f"{light:.2f}")
"""


def test_light_import_then_full_import():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 3.0  # the full import takes ~3.5 s here
