"""One optimizer step on both sides: the proof that fine-tuning starts where TF would.

The same loss as `verify --grad`, sum(output * R), one SGD step (`torch.optim.SGD` against
`w - lr g` with TF's gradients, or against a Keras `SGD` optimizer), then every PyTorch
parameter against its TF counterpart after the step.
"""

from __future__ import annotations

import numpy as np

from codegen.verify import _as_list, torch_inputs
from codegen.verify.param_map import ParamSource, keras_variable_keys, layout
from codegen.verify.train import keras_inputs

SCALE_FLOOR = 1e-2


def sgd_step(report, lr: float) -> dict[str, float]:
    """One `torch.optim.SGD` step with the gradients `verify_grad` left on the model, against
    TF's value - lr * TF's gradient: `step_errors` of every parameter after it."""
    import torch

    parameters = dict(report.model.named_parameters())
    torch.optim.SGD(parameters.values(), lr=lr).step()
    expected = {key: report.tf_values[key] - lr * report.tf_grads[key]
                for key in parameters if key in report.tf_values}
    return step_errors({key: p.detach().numpy() for key, p in parameters.items()}, expected)


def step_errors(ours: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """{key: max|ours - TF| / max|TF|} after an optimizer step, where a tensor whose largest
    value is under SCALE_FLOOR x the model's largest is measured on that floor instead: a
    conv bias before a training-mode BatchNorm has a gradient of exactly zero in exact
    arithmetic, both sides hold round-off there (~1e-7 when weights are ~1), and the ratio
    of two round-offs means nothing. A parameter with no TF counterpart is inf: PyTorch
    would train what TF does not have."""
    scale = max((float(np.abs(a).max(initial=0.0)) for a in expected.values()), default=0.0)
    errors = {}
    for key, array in ours.items():
        if key not in expected or array.shape != expected[key].shape:
            errors[key] = float("inf")
            continue
        diff = float(np.abs(array.astype(np.float64) - expected[key]).max(initial=0.0))
        size = float(np.abs(expected[key]).max(initial=0.0))
        errors[key] = diff / max(size, SCALE_FLOOR * scale, 1e-30)
    return errors


def keras_sgd_step(keras_model, torch_model, entries: list[ParamSource], io: dict, feeds: dict,
                   multipliers: list[np.ndarray], *, lr: float, training: bool) -> dict[str, float]:
    """One SGD step of sum(output * R) on both sides (Keras `SGD`, `torch.optim.SGD`), then
    `step_errors` of every PyTorch parameter against its Keras variable."""
    import keras
    import tensorflow as tf
    import torch

    mapping, _ = keras_variable_keys(entries, keras_model.variables)  # before values change
    trainable = keras_model.trainable_variables
    with tf.GradientTape() as tape:
        outputs = _as_list(keras_model(keras_inputs(keras_model, io, feeds), training=training))
        loss = tf.add_n([tf.reduce_sum(out * r) for out, r in zip(outputs, multipliers)])
    keras.optimizers.SGD(learning_rate=lr).apply(tape.gradient(loss, trainable), trainable)

    inputs = torch_inputs(io, feeds)
    torch_model.train(training)
    optimizer = torch.optim.SGD(torch_model.parameters(), lr=lr)
    optimizer.zero_grad()
    ours = _as_list(torch_model(*inputs))
    sum((out * torch.from_numpy(r)).sum() for out, r in zip(ours, multipliers)).backward()
    optimizer.step()

    by_key = {key: path for path, key in mapping.items()}
    variables = {v.path: v for v in keras_model.variables}
    transforms = {entry.key: entry.transforms for entry in entries}
    expected = {key: layout(np.asarray(variables[by_key[key]].numpy()), transforms[key])
                for key, _ in torch_model.named_parameters()
                if key in by_key and transforms.get(key) is not None}
    return step_errors({key: p.detach().numpy() for key, p in torch_model.named_parameters()},
                       expected)
