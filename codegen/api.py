"""The Python API for notebooks and scripts: `codegen.convert(...)`, `codegen.build(...)`.

Both do what the commands of the same name do and return a report with the paths written
and the figures. Errors are raised as `codegen.errors.CodegenError` (with `.exit_code` and
a one-line `.message`). Progress bars are off unless `quiet=False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codegen.backends.pytorch.build import BuildReport
from codegen.errors import InputError, UsageError

__all__ = ["BuildReport", "ConvertReport", "build", "convert"]


@dataclass
class ConvertReport:
    output: Path
    model: Path  # the TF model converted (the .meta written for a zoo name)
    ir_dir: Path
    pth: Path
    built: BuildReport
    verified: list | None = None  # codegen.verify.Comparison per batch, when verify=True

    @property
    def model_py(self) -> Path:
        return self.built.model_py

    @property
    def weights_dir(self) -> Path:
        return self.built.weights_dir

    @property
    def worst_error(self) -> float | None:
        """max |PyTorch - TF| / max |TF| over the verified batches."""
        return max(c.rel_error for c in self.verified) if self.verified else None


def build(ir_dir: str | Path, output: str | Path, *, templates: str | Path | None = None,
          force: bool = False, quiet: bool = True) -> BuildReport:
    """IR folder -> OUTPUT/model.py + OUTPUT/weights/ (no TensorFlow needed)."""
    from codegen.backends.pytorch.build import build as build_model

    return build_model(Path(ir_dir), Path(output), templates=_path(templates), force=force,
                       quiet=quiet)


def convert(model: str | Path, output: str | Path, *, weights: str | Path | None = None,
            dst_node: str | list[str] | None = None, signature: str = "serving_default",
            random_weights: bool = False, seed: int = 0, tarball: str | Path | None = None,
            templates: str | Path | None = None, force: bool = False, verify: bool = False,
            bn_decay: float | None = None, quiet: bool = True) -> ConvertReport:
    """A TF model (checkpoint `.meta`, frozen `.pb`, SavedModel folder, `.keras`/`.h5`),
    a TF-slim zoo name or a Keras application name -> OUTPUT/{ir,model,model.pth}.

    For a TF-slim name ('resnet_v2_152') the checkpoint is written to OUTPUT/checkpoint
    first (`random_weights=True` works offline); a Keras application ('MobileNetV2') is
    built with calibrated random weights and saved as OUTPUT/keras/NAME (SavedModel).
    `dst_node` defaults to 'output' for `.meta`/`.pb` and to the signature's outputs
    otherwise. With `verify=True` TensorFlow and the generated model are compared; read
    `report.worst_error`.
    """
    from codegen.frontends.tensorflow.to_ir import to_ir
    from codegen.tools.dump import dump
    from codegen.zoo import keras_apps as keras_zoo
    from codegen.zoo import slim as zoo

    out = Path(output)
    model_path, weights_path = Path(model), _path(weights)
    if str(model) in zoo.ZOO:
        prefix = zoo.extract(str(model), out / "checkpoint", random_weights=random_weights,
                             seed=seed, tarball=_path(tarball), progress=not quiet)
        model_path, weights_path = Path(f"{prefix}.meta"), prefix
    elif str(model) in keras_zoo.KERAS_ZOO:
        if not random_weights:
            raise UsageError(f"{model}: Keras applications are built here with random weights "
                             "(--random-weights); pretrained Keras weights are not downloaded")
        built_model = keras_zoo.build_keras_model(str(model), seed=seed)
        model_path = keras_zoo.save_keras_model(built_model, out / "keras", str(model),
                                                formats=("savedmodel",))["savedmodel"]
    elif not model_path.exists():
        raise InputError(f"{model_path}: neither a model file nor a zoo name (the names: "
                         "'codegen extract --help')")
    if dst_node is None:
        outputs = ["output"] if model_path.suffix in (".meta", ".pb") else None
    else:
        outputs = [dst_node] if isinstance(dst_node, str) else list(dst_node)
    to_ir(model_path, weights_path, outputs, out / "ir", bn_decay=bn_decay, signature=signature,
          quiet=quiet)
    built = build(out / "ir", out / "model", templates=templates, force=force, quiet=quiet)
    dump(out / "model", out / "model.pth", quiet=quiet)
    report = ConvertReport(out, model_path, out / "ir", out / "model.pth", built)
    if verify:
        from codegen.verify import verify as run_verify

        report.verified = run_verify(model_path, weights_path, out / "model", seed=seed,
                                     quiet=quiet)
    return report


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
