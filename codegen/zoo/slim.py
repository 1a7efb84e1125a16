"""The TF-slim model zoo: build, download or randomly initialise ImageNet checkpoints.

`extract(name, out_dir)` writes ``out_dir/imagenet_<name>.ckpt.{meta,index,data-...}``:
the inference graph of the named `tf_slim.nets` model (placeholder ``input``, logits
``output``) with either the official TF-slim weights (downloaded, or from a tarball on
disk) or deterministic random weights whose BatchNorm statistics are calibrated.
"""

from __future__ import annotations

import difflib
import importlib
import os
import shutil
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any

from codegen.errors import InputError, NetworkError, OutputError, UsageError
from codegen.frontends.tensorflow.compat import import_slim, import_tf
from codegen.zoo.calibrate import BuildFn, restore_checkpoint, write_checkpoint

__all__ = ["ZOO", "ZooEntry", "extract", "lookup", "write_checkpoint"]

BASE_URL = "http://download.tensorflow.org/models"
CONNECT_TIMEOUT = 10.0  # seconds per connection attempt / read
CONNECT_DEADLINE = 15.0  # seconds until the server must have answered (DNS included)
CHECKPOINT_SUFFIXES = (".index", ".data-00000-of-00001")


@dataclass(frozen=True)
class ZooEntry:
    """One `tf_slim.nets` model and its official ImageNet checkpoint."""

    name: str
    module: str  # tf_slim.nets.<module>
    function: str  # the network function in that module
    arg_scope: str  # the arg-scope function in that module
    image_size: int
    num_classes: int
    url: str | None  # None: no official checkpoint
    checkpoint: str  # the checkpoint prefix inside the tarball
    options: tuple[tuple[str, Any], ...] = ()  # extra keyword arguments of `function`

    def network(self) -> Callable[..., Any]:
        """The tf_slim network function."""
        return self._member(self.function)

    def scope(self) -> Any:
        """A fresh arg scope for the network."""
        return self._member(self.arg_scope)()

    def _member(self, attribute: str) -> Any:
        import_slim()
        return getattr(importlib.import_module(f"tf_slim.nets.{self.module}"), attribute)


# name, tf_slim.nets module, default image size, classes, date of the official tarball
_TABLE = [
    ("resnet_v1_50", "resnet_v1", 224, 1000, "2016_08_28"),
    ("resnet_v1_101", "resnet_v1", 224, 1000, "2016_08_28"),
    ("resnet_v1_152", "resnet_v1", 224, 1000, "2016_08_28"),
    ("resnet_v1_200", "resnet_v1", 224, 1000, None),
    ("resnet_v2_50", "resnet_v2", 224, 1001, "2017_04_14"),
    ("resnet_v2_101", "resnet_v2", 224, 1001, "2017_04_14"),
    ("resnet_v2_152", "resnet_v2", 224, 1001, "2017_04_14"),
    ("resnet_v2_200", "resnet_v2", 224, 1001, None),
    ("vgg_16", "vgg", 224, 1000, "2016_08_28"),
    ("vgg_19", "vgg", 224, 1000, "2016_08_28"),
    ("inception_v1", "inception_v1", 224, 1001, "2016_08_28"),
    ("inception_v2", "inception_v2", 224, 1001, "2016_08_28"),
    ("inception_v3", "inception_v3", 299, 1001, "2016_08_28"),
    ("alexnet_v2", "alexnet", 224, 1000, None),
    ("overfeat", "overfeat", 231, 1000, None),
]


def _entry(name: str, module: str, size: int, classes: int, date: str | None) -> ZooEntry:
    """A ZooEntry whose function, arg scope, checkpoint and tarball follow TF-slim's names."""
    resnet = module.startswith("resnet")
    scope = "resnet_arg_scope" if resnet else f"{'vgg' if module == 'vgg' else name}_arg_scope"
    # Keep [N, 1, 1, C] logits (squeezed into `output` later); the inference graph
    # does not need Inception v3's auxiliary head, which would also forbid small images.
    options = () if resnet else (("spatial_squeeze", False),)
    if name == "inception_v3":
        options += (("create_aux_logits", False),)
    return ZooEntry(
        name=name,
        module=module,
        function=name,
        arg_scope=scope,
        image_size=size,
        num_classes=classes,
        url=f"{BASE_URL}/{name}_{date}.tar.gz" if date else None,
        checkpoint=f"{name}.ckpt",
        options=options,
    )


ZOO: dict[str, ZooEntry] = {row[0]: _entry(*row) for row in _TABLE}


def lookup(name: str) -> ZooEntry:
    """The zoo entry called `name`; UsageError naming the closest known names if none."""
    if name in ZOO:
        return ZOO[name]
    close = difflib.get_close_matches(name, ZOO, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UsageError(f"unknown model {name!r}{hint}; known models: {', '.join(ZOO)}")


def zoo_build_fn(entry: ZooEntry, num_classes: int) -> BuildFn:
    """build_fn(inputs, is_training) for `entry` under its arg scope; logits [N, 1, 1, C].

    Networks with fixed-size heads give an HxW grid of logits for larger images; these
    are averaged so the model still classifies the whole image.
    """

    def build(inputs: Any, is_training: bool) -> Any:
        tf, slim = import_tf(), import_slim()
        with slim.arg_scope(entry.scope()):
            logits, _ = entry.network()(
                inputs, num_classes=num_classes, is_training=is_training, **dict(entry.options)
            )
        if logits.shape.rank == 4 and tuple(logits.shape[1:3]) != (1, 1):
            logits = tf.reduce_mean(logits, [1, 2], keepdims=True, name="spatial_mean")
        return logits

    return build


def extract(
    name: str,
    out_dir: Path,
    *,
    random_weights: bool = False,
    seed: int = 0,
    tarball: Path | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    progress: bool = True,
) -> Path:
    """Write out_dir/imagenet_<name>.ckpt.{meta,index,data-00000-of-00001}; return the prefix.

    The weights are the official TF-slim ones (downloaded, or read from `tarball`), or
    deterministic random ones with `random_weights`. `image_size` and `num_classes`
    override the entry's defaults (the official weights need the default classes).
    """
    entry = lookup(name)
    if random_weights and tarball is not None:
        raise UsageError("--random-weights and --from-tarball exclude each other; pick one")
    if not random_weights and tarball is None and entry.url is None:
        raise UsageError(f"there is no official checkpoint for {name}; run with --random-weights")
    size = image_size or entry.image_size
    build_fn = zoo_build_fn(entry, num_classes or entry.num_classes)
    out_dir = Path(out_dir)
    with _staging(out_dir) as stage:
        prefix = stage / f"imagenet_{name}.ckpt"
        if random_weights:
            write_checkpoint(build_fn, prefix, image_size=size, seed=seed)
        else:
            source = Path(tarball) if tarball else download(entry.url, stage, progress)
            checkpoint = unpack_checkpoint(source, entry.checkpoint, stage / "unpacked")
            label = f"{entry.checkpoint} from {tarball or entry.url}"
            restore_checkpoint(build_fn, checkpoint, prefix, image_size=size, label=label)
        return _publish(prefix, out_dir)


@contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A temporary folder next to `out_dir` (same filesystem), removed afterwards."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"cannot write next to {out_dir}: {exc}") from exc
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(prefix: Path, out_dir: Path) -> Path:
    """Move the checkpoint files at `prefix` into `out_dir`, all or none."""
    moved: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (*CHECKPOINT_SUFFIXES, ".meta"):  # the .meta last: it marks completion
            target = out_dir / (prefix.name + suffix)
            Path(str(prefix) + suffix).replace(target)
            moved.append(target)
    except OSError as exc:
        for target in moved:
            target.unlink(missing_ok=True)
        raise OutputError(f"cannot write the checkpoint into {out_dir}: {exc}") from exc
    return out_dir / prefix.name


def _network_error(url: str, reason: object) -> NetworkError:
    """The one-line error for a failed download, with the offline alternatives."""
    return NetworkError(
        f"could not download {url} ({reason}); run with --random-weights for deterministic "
        "offline weights, or download the tarball elsewhere and pass --from-tarball PATH"
    )


def _open_url(url: str) -> Any:
    """urlopen `url`, giving up after CONNECT_DEADLINE seconds even if DNS hangs."""
    result: dict[str, Any] = {}

    def connect() -> None:
        try:
            result["response"] = urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=connect, name="codegen-download", daemon=True)
    thread.start()
    thread.join(CONNECT_DEADLINE)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {CONNECT_DEADLINE:.0f} s")
    if "error" in result:
        raise result["error"]
    return result["response"]


def download(url: str, folder: Path, progress: bool = True) -> Path:
    """Download `url` into a temporary file in `folder`; NetworkError on failure."""
    handle, name = tempfile.mkstemp(suffix=".tar.gz", dir=folder)
    try:
        response = _open_url(url)
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        os.close(handle)
        reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", exc)
        raise _network_error(url, reason) from exc
    with response, open(handle, "wb") as sink, _progress(url, response, progress) as advance:
        total, received = int(response.headers.get("Content-Length") or 0), 0
        while chunk := _read(url, response):
            try:
                sink.write(chunk)
            except OSError as exc:
                raise OutputError(f"cannot save the download of {url}: {exc}") from exc
            received += len(chunk)
            advance(len(chunk))
    if total and received != total:
        raise _network_error(url, f"got {received} of {total} bytes")
    return Path(name)


def _read(url: str, response: Any) -> bytes:
    """The next chunk of the download (b"" at the end); NetworkError on failure."""
    try:
        return response.read(1 << 20)
    except (HTTPException, OSError) as exc:
        raise _network_error(url, exc) from exc


@contextmanager
def _progress(url: str, response: Any, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich download bar on stderr (only on a terminal); yields advance(nbytes)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda _: None
        return
    from rich import progress as rp
    from rich.console import Console

    total = int(response.headers.get("Content-Length") or 0) or None
    columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn())
    columns += (rp.TransferSpeedColumn(), rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(url.rsplit("/", 1)[-1], total=total)
        yield lambda n: bar.advance(task, n)


def _checkpoint_member(member: tarfile.TarInfo, checkpoint: str) -> bool:
    """Whether `member` is a file of `checkpoint`, at the top or in one plain folder."""
    path = PurePosixPath(member.name)
    parts = [p for p in path.parts if p != "."]
    if not member.isfile() or path.is_absolute() or ".." in parts or len(parts) > 2:
        return False
    names = {checkpoint, *(checkpoint + suffix for suffix in CHECKPOINT_SUFFIXES)}
    return parts[-1] in names


def unpack_checkpoint(tarball: Path, checkpoint: str, dest: Path) -> Path:
    """Extract only `checkpoint`'s files from `tarball` into `dest`; return its prefix."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = [m for m in archive.getmembers() if _checkpoint_member(m, checkpoint)]
            if not members:
                raise InputError(
                    f"{tarball} holds no checkpoint {checkpoint} (expected {checkpoint}.index "
                    f"and {checkpoint}.data-00000-of-00001, or a single {checkpoint})"
                )
            folder = PurePosixPath(members[0].name).parent
            members = [m for m in members if PurePosixPath(m.name).parent == folder]
            for member in members:
                archive.extract(member, dest, filter="data")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise InputError(f"cannot read the tarball {tarball}: {exc}") from exc
    return dest / folder / checkpoint
