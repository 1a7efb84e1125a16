"""codegen: TensorFlow models -> readable PyTorch source + weights.

In a notebook::

    import codegen
    report = codegen.convert("resnet_v2_152", "out", random_weights=True, verify=True)
    report.model_py, report.pth, report.built.parameters, report.worst_error

`convert` and `build` live in `codegen.api`; they are imported on first use, so
`import codegen` stays instant (no TensorFlow, no torch).
"""

from __future__ import annotations

__all__ = ["build", "convert"]


def __getattr__(name: str):
    if name in ("build", "convert", "ConvertReport", "BuildReport"):
        from codegen import api

        return getattr(api, name)
    raise AttributeError(f"module 'codegen' has no attribute {name!r}")
