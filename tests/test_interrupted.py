"""A run killed half-way (SIGKILL: no clean-up code runs) leaves the previous output exactly
as it was; the next run removes the leftovers and succeeds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import codegen


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def staged_weights(parent: Path, name: str) -> int:
    """How many weight files the run has staged so far (-1: no staging folder yet)."""
    stages = list(parent.glob(f".{name}.codegen-tmp-*"))
    if not stages:
        return -1
    return sum(1 for _ in (stages[0] / "weights").glob("*.npy")) if (stages[0] / "weights").is_dir() else 0


def kill_half_way(args: list, out: Path, total: int, sig=signal.SIGKILL) -> int:
    """Start `codegen ARGS`, send `sig` once it has staged some but not half of `total`
    weight files; return how many it had staged."""
    process = subprocess.Popen([sys.executable, "-m", "codegen.cli", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            staged = staged_weights(out.parent, out.name)
            if 1 <= staged < total // 2:
                process.send_signal(sig)
                process.wait()
                if sig != signal.SIGKILL:
                    assert process.returncode == 130
                    assert process.stderr.read() == (b"codegen: interrupted; the previous "
                                                     b"output is unchanged\n")
                return staged
            time.sleep(0.0005)
        raise AssertionError(f"the run ended before it could be killed: {process.stderr.read()!r}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


def before_index(before: dict[str, bytes]) -> dict:
    return json.loads(before["weights/index.json"])


def doubled_ir(source: Path, target: Path) -> None:
    """The same IR with every weight doubled (so a build must rewrite every weight file)."""
    shutil.copytree(source, target)
    data = json.loads((target / "graph.json").read_text())
    for entry in data["weights"].values():
        path = target / entry["file"]
        np.save(path, np.load(path, allow_pickle=False) * 2, allow_pickle=False)
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (target / "graph.json").write_text(json.dumps(data, indent=1))


def test_killed_build_leaves_previous_output(tiny_build, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(tiny_build / "model", out)
    (out / "my_notes.txt").write_text("mine\n")  # a user's file, kept by every build
    before = files(out)
    doubled_ir(tiny_build / "ir", tmp_path / "ir2")
    total = len(json.loads((out / "weights" / "index.json").read_text()))

    staged = kill_half_way(["build", tmp_path / "ir2", "-o", out], out, total)

    assert 1 <= staged < total // 2
    assert files(out) == before  # not one byte of model.py or weights/ changed
    assert list(tmp_path.glob(".model.codegen-tmp-*"))  # the killed run's staging folder

    result = codegen("build", tmp_path / "ir2", "-o", out)
    assert result.returncode == 0, result.stderr
    tensors = total - sum(key.endswith("num_batches_tracked") for key in before_index(before))
    assert f" {tensors} written, {total - tensors} unchanged" in result.stderr
    assert list(tmp_path.glob(".model.codegen-*")) == []  # leftovers cleaned
    assert (out / "my_notes.txt").read_text() == "mine\n"
    key = next(iter(json.loads((out / "weights" / "index.json").read_text())))
    old = np.load(tiny_build / "model" / "weights" / f"{key}.npy", allow_pickle=False)
    new = np.load(out / "weights" / f"{key}.npy", allow_pickle=False)
    np.testing.assert_array_equal(new, old * 2)


def test_killed_to_ir_leaves_previous_output(tiny_checkpoint, tiny_build, tmp_path):
    out = tmp_path / "ir"
    shutil.copytree(tiny_build / "ir", out)
    graph = json.loads((out / "graph.json").read_text())
    graph["source"]["note"] = "the previous run"  # so old and new output differ
    (out / "graph.json").write_text(json.dumps(graph, indent=1))
    before = files(out)

    args = ["to-ir", f"{tiny_checkpoint}.meta", "--dst-node", "output", "-o", out]
    staged = kill_half_way(args, out, len(graph["weights"]))

    assert staged >= 1
    assert files(out) == before
    result = codegen(*args)
    assert result.returncode == 0, result.stderr
    assert "note" not in json.loads((out / "graph.json").read_text())["source"]
    assert list(tmp_path.glob(".ir.codegen-*")) == []


def test_terminated_build_cleans_up(tiny_build, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(tiny_build / "model", out)
    before = files(out)
    doubled_ir(tiny_build / "ir", tmp_path / "ir2")
    total = len(json.loads((out / "weights" / "index.json").read_text()))

    assert kill_half_way(["build", tmp_path / "ir2", "-o", out], out, total, signal.SIGTERM) >= 1

    assert files(out) == before
    assert list(tmp_path.glob(".model.codegen-*")) == []  # removed by the run itself


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_folder_lost_between_two_renames_is_put_back(tmp_path, monkeypatch):
    """Without renameat2 the swap is two renames; a run killed between them left the old
    folder inside `.out.codegen-old-*`: the next run puts it back before doing anything."""
    from codegen import staging

    old = tmp_path / f".out.codegen-old-{dead_pid()}-abc" / "out"
    old.mkdir(parents=True)
    (old / "model.py").write_text("previous\n")
    (tmp_path / f".out.codegen-tmp-{dead_pid()}-def").mkdir()
    staging.clean_leftovers(tmp_path / "out")
    assert (tmp_path / "out" / "model.py").read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    monkeypatch.setattr(staging, "_exchange", lambda a, b: False)  # the portable path
    with staging.staged_dir(tmp_path / "out") as temp:
        (temp / "model.py").write_text("new\n")
    assert (tmp_path / "out" / "model.py").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_running_build_is_left_alone(tmp_path):
    """Temporary folders of a run that is still alive (this process) are not touched."""
    from codegen import staging

    mine = tmp_path / f".out.codegen-tmp-{os.getpid()}-xyz"
    mine.mkdir()
    staging.clean_leftovers(tmp_path / "out")
    assert mine.is_dir()
