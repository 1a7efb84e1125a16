"""A corpus of bad inputs, each run through the command line against a snapshot of its output.

Every case: exit code and exact output as in tests/data/snapshots/<case>.txt (temporary paths
written `<tmp>`; refresh with CODEGEN_UPDATE_GOLDEN=1), one `codegen: error:` line naming the
file or node and saying what to do, no traceback, and the previous output folder byte for
byte as it was, with no temporary folder left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from golden import check_snapshot

BAD = Path(__file__).parent / "data" / "bad"


@dataclass
class Workspace:
    root: Path  # everything of one case lives here (printed as <tmp>)
    ckpt: Path  # checkpoint prefix of the tiny ResNet V2 (.meta/.index/.data)
    ir: Path  # a valid IR folder
    out: Path  # the previous output of the command (must survive a failure untouched)

    def graph(self) -> dict:
        return json.loads((self.ir / "graph.json").read_text())

    def write_graph(self, data: dict) -> None:
        (self.ir / "graph.json").write_text(json.dumps(data, indent=1))

    def first_weight(self) -> tuple[Path, np.ndarray]:
        entry = next(iter(self.graph()["weights"].values()))
        path = self.ir / entry["file"]
        return path, np.load(path, allow_pickle=False)

    def to_ir(self, *args) -> list:
        return ["to-ir", *args, "-o", self.out]

    def build(self, *args) -> list:
        return ["build", self.ir, "-o", self.out, *args]


CASES: dict[str, tuple[str, Callable[[Workspace], list]]] = {}


def case(name: str, previous: str):
    """Register a case; `previous` says what the existing output folder holds: 'ir' or 'model'."""
    def register(make):
        CASES[name] = (previous, make)
        return make
    return register


# -- checkpoints and graphs (codegen to-ir) ----------------------------------------------------
@case("ckpt_missing_index", "ir")
def _(ws):
    ws.ckpt.with_name("tiny.ckpt.index").unlink()
    return ws.to_ir(f"{ws.ckpt}.meta", "--dst-node", "output")


@case("ckpt_missing_data", "ir")
def _(ws):
    next(ws.ckpt.parent.glob("tiny.ckpt.data-*")).unlink()
    return ws.to_ir(f"{ws.ckpt}.meta", "--dst-node", "output")


@case("ckpt_truncated_data", "ir")
def _(ws):
    data = next(ws.ckpt.parent.glob("tiny.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # a download cut short
    return ws.to_ir(f"{ws.ckpt}.meta", "--dst-node", "output")


@case("meta_not_a_metagraph", "ir")
def _(ws):
    shutil.copy(BAD / "garbage.meta", ws.root / "garbage.meta")
    return ws.to_ir(ws.root / "garbage.meta", "-w", ws.ckpt, "--dst-node", "output")


@case("ckpt_does_not_match_graph", "ir")
def _(ws):
    other = ws.root / "other" / "other.ckpt"
    _save_checkpoint({"resnet_v2_tiny/conv1/weights": np.zeros((3, 3, 3, 8), np.float32)}, other)
    return ws.to_ir(f"{ws.ckpt}.meta", "-w", other, "--dst-node", "output")


@case("unknown_dst_node", "ir")
def _(ws):
    return ws.to_ir(f"{ws.ckpt}.meta", "--dst-node", "outptu")


@case("unsupported_ops", "ir")
def _(ws):
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        y = tf.math.cumprod(tf.math.cumprod(x, axis=1), axis=1)
        tf.identity(tf.math.zeta(y, 3.0), name="output")
    (ws.root / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    return ws.to_ir(ws.root / "g.pb", "--dst-node", "output")


# -- IR folders (codegen build) --------------------------------------------------------------
@case("ir_not_json", "model")
def _(ws):
    shutil.copy(BAD / "not_json.json", ws.ir / "graph.json")
    return ws.build()


@case("ir_violates_schema", "model")
def _(ws):
    data = ws.graph()
    data["nodes"][0]["inputs"] = "input:0"  # a string where a list belongs
    ws.write_graph(data)
    return ws.build()


@case("ir_has_a_cycle", "model")
def _(ws):
    data = ws.graph()
    data["nodes"][0]["inputs"] = [f"{data['nodes'][2]['name']}:0"]
    ws.write_graph(data)
    return ws.build()


@case("ir_dangling_input", "model")
def _(ws):
    data = ws.graph()
    data["nodes"][1]["inputs"] = ["nowhere:0"]
    ws.write_graph(data)
    return ws.build()


@case("ir_duplicate_name", "model")
def _(ws):
    data = ws.graph()
    data["nodes"].append(dict(data["nodes"][1]))
    ws.write_graph(data)
    return ws.build()


@case("ir_unknown_op", "model")
def _(ws):
    data = ws.graph()
    data["nodes"][1]["op"] = "warp_drive"
    ws.write_graph(data)
    return ws.build()


@case("weight_missing", "model")
def _(ws):
    ws.first_weight()[0].unlink()
    return ws.build()


@case("weight_wrong_shape", "model")
def _(ws):
    path, array = ws.first_weight()
    np.save(path, array.reshape(-1), allow_pickle=False)
    return ws.build()


@case("weight_wrong_dtype", "model")
def _(ws):
    path, array = ws.first_weight()
    np.save(path, array.astype(np.float64), allow_pickle=False)
    return ws.build()


@case("weight_pickled", "model")
def _(ws):
    path, _ = ws.first_weight()
    marker = ws.root / "UNPICKLED"
    np.save(path, np.array([_Trap(str(marker))], dtype=object), allow_pickle=True)
    return ws.build()


@case("weight_fails_sha256", "model")
def _(ws):
    path, array = ws.first_weight()
    changed = np.array(array)
    changed.flat[0] += 1.0
    np.save(path, changed, allow_pickle=False)
    return ws.build()


@case("output_is_a_file", "model")
def _(ws):
    (ws.root / "a_file").write_text("not a folder\n")
    return ["build", ws.ir, "-o", ws.root / "a_file"]


@case("output_not_writable", "model")
def _(ws):
    locked = ws.root / "locked"
    locked.mkdir()
    os.rename(ws.out, locked / "model")
    ws.out = locked / "model"
    locked.chmod(0o555)
    return ["build", ws.ir, "-o", ws.out]


@case("model_py_invalid_python_build", "model")
def _(ws):
    model = ws.out / "model.py"
    model.write_text(model.read_text().replace("def forward(self", "def forward(self,,", 1))
    return ws.build()


@case("model_py_not_text", "model")
def _(ws):
    model = ws.out / "model.py"
    model.write_bytes(model.read_bytes().replace(b"import torch\n", b"import torch\xff\xfe\n", 1))
    return ws.build()


@case("model_py_invalid_python_verify", "model")
def _(ws):
    model = ws.out / "model.py"
    model.write_text(model.read_text().replace("def forward(self", "def forward(self,,", 1))
    return ["verify", f"{ws.ckpt}.meta", "--dst-node", "output", ws.out]


@case("verify_folder_not_built", "model")
def _(ws):
    (ws.out / ".codegen" / "io.json").unlink()
    return ["verify", f"{ws.ckpt}.meta", "--dst-node", "output", ws.out]


@case("dump_index_not_json", "model")
def _(ws):
    (ws.out / "weights" / "index.json").write_text('{"conv1.weight": ')
    return ["dump", ws.out, "-o", ws.root / "model.pth"]


@case("dump_index_names_a_path", "model")
def _(ws):
    (ws.out / "weights" / "index.json").write_text('{"../../../etc/passwd": {}}')
    return ["dump", ws.out, "-o", ws.root / "model.pth"]


@case("dump_weight_pickled", "model")
def _(ws):
    key = next(iter(json.loads((ws.out / "weights" / "index.json").read_text())))
    trap = np.array([_Trap(str(ws.root / "UNPICKLED"))], dtype=object)
    np.save(ws.out / "weights" / f"{key}.npy", trap, allow_pickle=True)
    return ["dump", ws.out, "-o", ws.root / "model.pth"]


class _Trap:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _save_checkpoint(values: dict[str, np.ndarray], prefix: Path) -> None:
    from codegen.frontends.tensorflow.compat import import_tf

    tf = import_tf()
    prefix.parent.mkdir(parents=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.variables_initializer(variables))
            tf.compat.v1.train.Saver(variables).save(session, str(prefix), write_meta_graph=False)


# -- the test ------------------------------------------------------------------------------------
def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(args: list, *, drop_root: bool = False) -> subprocess.CompletedProcess:
    prefix = []
    if drop_root and os.geteuid() == 0:  # root writes anywhere: run without that privilege
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a folder unwritable")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, sys.executable, "-m", "codegen.cli", *map(str, args)],
                          capture_output=True, text=True, check=False)


@pytest.fixture
def workspace(tmp_path, tiny_checkpoint, tiny_build) -> Workspace:
    shutil.copytree(tiny_checkpoint.parent, tmp_path / "ckpt")
    shutil.copytree(tiny_build / "ir", tmp_path / "ir")
    return Workspace(tmp_path, tmp_path / "ckpt" / tiny_checkpoint.name, tmp_path / "ir",
                     tmp_path / "out")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, workspace, tiny_build):
    previous, make = CASES[name]
    shutil.copytree(tiny_build / previous, workspace.out)
    args = make(workspace)
    before = files(workspace.out)
    try:
        result = run_cli(args, drop_root=name == "output_not_writable")
    finally:
        workspace.out.parent.chmod(0o755)
    tmp = str(workspace.root)
    command = " ".join(str(a) for a in ["codegen", *args]).replace(tmp, "<tmp>")
    text = (f"$ {command}\nexit code: {result.returncode}\n--- stdout\n{result.stdout}"
            f"--- stderr\n{result.stderr}").replace(tmp, "<tmp>")
    check_snapshot(name, text)

    assert result.returncode not in (0, 1), text
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("codegen: error: ")]
    assert len(errors) == 1, text
    assert all(line.startswith(("codegen: error: ", "  ")) for line in result.stderr.splitlines())
    assert "<tmp>/" in errors[0].replace(tmp, "<tmp>") or "'" in errors[0]  # names a file or node
    assert "; " in errors[0]  # what is wrong; what to do
    assert files(workspace.out) == before  # the previous output, byte for byte
    leftovers = [p.name for p in workspace.out.parent.iterdir() if ".codegen-" in p.name]
    assert leftovers == []
    assert not (workspace.root / "UNPICKLED").exists()
    assert not (workspace.root / "model.pth").exists()


def test_debug_shows_the_traceback(workspace, tiny_build):
    shutil.copytree(tiny_build / "model", workspace.out)
    shutil.copy(BAD / "not_json.json", workspace.ir / "graph.json")
    for args in (["--debug", "build", workspace.ir, "-o", workspace.out],
                 ["build", "--debug", workspace.ir, "-o", workspace.out]):
        result = run_cli(args)
        assert result.returncode == 5
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("codegen: error: ")
