"""The parameter count line of `codegen verify`: the generated model trains what the source does.

Every trainable variable of the source is one trainable `nn.Parameter` of the generated model
(a shared variable once), and nothing else is: moving statistics and constants are buffers.
The source's count is Keras' `model.trainable_weights`, a SavedModel's trainable variables or
a TF1 checkpoint's TRAINABLE_VARIABLES collection (`TFModel.trainable_count`); a frozen
GraphDef has no variables, so its count is not known and only ours is printed. A trainable
variable the converted function never reads (keras-hub DINOv2's mask token, used only in
pretraining) cannot be part of the generated model: it is named in the line and left out of
the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ParamCount:
    source: int | None  # None: the source does not say (a frozen GraphDef)
    generated: int
    unread: dict[str, int] = field(default_factory=dict)  # source variables never read

    @property
    def expected(self) -> int | None:
        return None if self.source is None else self.source - sum(self.unread.values())

    @property
    def matches(self) -> bool:
        return self.source is None or self.expected == self.generated

    def line(self) -> str:
        if self.source is None:
            return (f"parameters: generated {self.generated:,} trainable "
                    "(a frozen GraphDef does not say what the source trains)")
        relation = "=" if self.matches else "!="
        text = f"parameters: source {self.source:,} trainable"
        if self.unread:
            names = ", ".join(f"{name} ({size:,})" for name, size in sorted(self.unread.items()))
            text += f", {self.expected:,} read by the model's function (never read: {names})"
        return f"{text} {relation} generated {self.generated:,}"

    def problem(self) -> str:
        """'' when the counts agree, else the one-line reason verify fails with."""
        if self.matches:
            return ""
        return (f"the generated model has {self.generated:,} trainable parameters, the source "
                f"{self.expected:,}: a trainable variable became a buffer, or a buffer a parameter")


def trainable_parameters(model) -> int:
    """The trainable values of a torch model, a shared parameter once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_parameters(out_dir: Path, source: int | None,
                     unread: dict[str, int] | None = None) -> ParamCount:
    """The generated model's trainable count (of `build_model()`: unfused, so each BatchNorm
    keeps its scale and offset) against the source's."""
    from codegen.verify import import_generated

    module = import_generated(Path(out_dir))
    return ParamCount(source, trainable_parameters(module.build_model()), dict(unread or {}))
