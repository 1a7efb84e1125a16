"""The `codegen` command line.

extract -> to-ir -> build -> dump -> verify, or `convert` for all of them. TensorFlow and
torch are imported only by the commands that need them, so `codegen --help` is instant
and `codegen build` runs without TensorFlow.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from codegen.errors import CodegenError, Exit, UsageError

ZOO_HINT = ("resnet_v2_152, resnet_v1_50, vgg_16, inception_v3, ... or a Keras application "
            "(MobileNetV2, EfficientNetB0, ...; see 'codegen extract --help')")


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


# -- commands ---------------------------------------------------------------------------------
def cmd_extract(args) -> int:
    from codegen.zoo import keras_apps as keras_zoo
    from codegen.zoo import slim as zoo

    if args.name in keras_zoo.KERAS_ZOO:
        return _extract_keras(args)
    prefix = zoo.extract(args.name, Path(args.output), random_weights=args.random_weights,
                         seed=args.seed, tarball=args.from_tarball, progress=not args.quiet)
    print(f"{prefix}.meta")
    return Exit.OK


def _extract_keras(args) -> int:
    """A Keras application with random weights, as NAME.keras and the SavedModel NAME/."""
    from codegen.zoo import keras_apps as keras_zoo

    if not args.random_weights:
        raise UsageError(f"{args.name}: Keras applications are built here with --random-weights "
                         "(pretrained Keras weights are not downloaded)")
    model = keras_zoo.build_keras_model(args.name, image_size=args.image_size, seed=args.seed)
    paths = keras_zoo.save_keras_model(model, Path(args.output), args.name)
    for path in paths.values():
        print(path)
    return Exit.OK


def cmd_inspect(args) -> int:
    from codegen.tools.inspection import (
        inspect_model,
        load_source,
        picture_ops,
        print_report,
        write_tensorboard,
    )

    model = Path(args.model)
    if args.svg:
        from codegen.tools.picture import check_options

        check_options(args.svg, args.depth)  # before the slow part
    source = load_source(model, args.weights)
    report = inspect_model(model, args.weights, source, args.dst_node)
    print_report(report, as_json=args.json)
    if args.svg:
        from codegen.tools.picture import write_picture

        boxes = write_picture(picture_ops(source), args.svg, args.depth, title=model.name)
        _say(args, f"wrote {args.svg}: {boxes} boxes")
    if args.tensorboard:
        events = write_tensorboard(source, args.tensorboard)
        _say(args, f"wrote {events}; view it with: tensorboard --logdir {args.tensorboard}")
    problems = report.get("conversion", {}).get("problems")
    if problems:
        from codegen.errors import UnsupportedOpsError

        raise UnsupportedOpsError(problems[0], details=problems[1:])
    return Exit.OK


def cmd_to_ir(args) -> int:
    from codegen.frontends.tensorflow.to_ir import to_ir

    start = time.perf_counter()
    graph = to_ir(Path(args.model), args.weights, args.dst_node, Path(args.output),
                  bn_decay=args.bn_decay, signature=args.signature, inputs=args.input,
                  quiet=args.quiet)
    _say(args, f"wrote {args.output}/graph.json: {len(graph.nodes)} nodes, "
               f"{len(graph.weights)} weights ({time.perf_counter() - start:.1f} s)")
    return Exit.OK


def cmd_build(args) -> int:
    from codegen.backends.pytorch.build import build

    start = time.perf_counter()
    report = build(Path(args.ir_dir), Path(args.output), templates=args.templates,
                   force=args.force, quiet=args.quiet, check=not args.no_check)
    _say(args, f"wrote {report.summary()} ({time.perf_counter() - start:.1f} s)")
    for note in report.notes:
        _say(args, f"note: {note}")
    return Exit.OK


def cmd_dump(args) -> int:
    from codegen.tools.dump import dump

    count = dump(Path(args.out_dir), Path(args.output), quiet=args.quiet)
    _say(args, f"wrote {args.output}: {count} tensors")
    return Exit.OK


def cmd_verify(args) -> int:
    from codegen.errors import MismatchError
    from codegen.verify import TFRunner, verify

    if args.grad or args.train:
        if args.per_layer or args.json:
            raise UsageError("--per-layer/--json and --grad/--train are separate checks: run "
                             "them one at a time")
        return _verify_fine_tuning(args)
    if args.per_layer or args.json:
        from codegen.verify.layers import read_layers

        read_layers(Path(args.out_dir))  # fail before the slow part if the map is missing
    runner = TFRunner(Path(args.model), args.weights)
    results = verify(Path(args.model), args.weights, Path(args.out_dir), seed=args.seed,
                     float64=not args.no_float64, runner=runner, quiet=args.quiet,
                     inputs=args.inputs)
    worst = 0.0
    for r in results:
        line = (f"batch {r.batch}: {r.output} {list(r.shape)}  max|PyTorch - TF| / max|TF| = "
                f"{r.rel_error:.3g}")
        if r.ours_vs_f64 is not None:
            line += f"  (vs float64: TF {r.tf_vs_f64:.3g}, ours {r.ours_vs_f64:.3g})"
        print(line)
        worst = max(worst, r.rel_error)
    params = _parameter_count(args, runner)
    hint = "run 'codegen verify --per-layer' to find the layer where it starts"
    if args.per_layer or args.json:
        hint = _verify_per_layer(args, runner, results)
    if worst > args.tolerance:
        raise MismatchError(f"PyTorch and TensorFlow differ by {worst:.3g} > tolerance "
                            f"{args.tolerance:g}; {hint}")
    if params.problem():
        raise MismatchError(params.problem())
    print(f"ok: worst relative error {worst:.3g} <= {args.tolerance:g}")
    return Exit.OK


def _parameter_count(args, runner):
    """Print the parameter count line (source's trainable values, ours); return the count."""
    from codegen.verify.params import count_parameters

    params = count_parameters(Path(args.out_dir), runner.trainable_count, runner.trainable_unread)
    print(params.line())
    return params


def _verify_per_layer(args, runner, results) -> str:
    """Print (and with --json write) the per-layer table; returns a hint for errors."""
    import json
    from dataclasses import asdict

    from codegen.verify.layers import print_layers, verify_layers

    report = verify_layers(Path(args.model), args.weights, Path(args.out_dir), seed=args.seed,
                           float64=args.float64, tolerance=args.tolerance, runner=runner,
                           quiet=args.quiet)
    print_layers(report, float64=args.float64)
    if args.json:
        table = {"outputs": [asdict(r) for r in results], **report.to_json()}
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
        _say(args, f"wrote {args.json}")
    jump = report.first_jump
    return f"the error starts at {jump.module} (TF {jump.tf_tensor})" if jump else \
        "no single layer stands out in the per-layer table"


def _verify_fine_tuning(args) -> int:
    """verify --grad and/or --train: their tables, then one MismatchError for all problems."""
    from codegen.errors import MismatchError
    from codegen.verify import TFRunner

    problems, passed = [], []
    if args.train:
        from codegen.verify.train import print_train_report, require_keras_file, verify_train

        require_keras_file(Path(args.model))  # before the slow part
    runner = TFRunner(Path(args.model), args.weights)
    params = _parameter_count(args, runner)
    if params.problem():
        problems.append(f"parameters: {params.problem()}")
    if args.grad:
        from codegen.verify.grad import print_grad_report, verify_grad

        report = verify_grad(Path(args.model), args.weights, Path(args.out_dir), seed=args.seed,
                             float64=not args.no_float64, runner=runner)
        print_grad_report(report, args.tolerance)
        problems += [f"grad: {text}" for text in report.problems(args.tolerance)]
        passed.append(f"gradients within {args.tolerance:g}" if report.noise_floor <= args.tolerance
                      else f"gradients within the noise floor {report.noise_floor:.3g} (see above)")
        if report.uncompared_parameters():
            passed[-1] += (f", {len(report.uncompared_parameters())} parameters not compared "
                           "(listed above)")
    if args.train:
        report = verify_train(Path(args.model), Path(args.out_dir), seed=args.seed,
                              float64=not args.no_float64)
        print_train_report(report, args.tolerance)
        problems += [f"train: {text}" for text in report.failures(args.tolerance)]
        passed.append(f"training mode within {args.tolerance:g}")
    if problems:
        raise MismatchError(f"fine-tuning would not start where TensorFlow does "
                            f"(tolerance {args.tolerance:g}): {problems[0]}", details=problems)
    print(f"ok: {'; '.join(passed)}")
    return Exit.OK


def cmd_convert(args) -> int:
    from codegen.api import convert

    report = convert(args.model, args.output, weights=args.weights,
                     dst_node=args.dst_node, signature=args.signature,
                     random_weights=args.random_weights,
                     seed=args.seed, tarball=args.from_tarball, templates=args.templates,
                     force=args.force, bn_decay=args.bn_decay, quiet=args.quiet)
    _say(args, f"wrote {report.built.summary()}")
    _say(args, f"wrote {report.pth}")
    if args.verify:
        args.out_dir, args.model = report.built.out_dir, report.model
        return cmd_verify(args)
    return Exit.OK


def cmd_templates_export(args) -> int:
    import shutil

    from codegen.resources import templates_dir

    target = Path(args.dir)
    for source in sorted(templates_dir().rglob("*.jinja")):
        destination = target / source.relative_to(templates_dir())
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    print(f"copied the default templates to {target}; edit any and pass --templates {target}")
    return Exit.OK


# -- parser -------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="codegen", description=__doc__.split("\n\n")[0])
    main.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, function, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks of errors")
        sub.set_defaults(run=function)
        return sub

    sub = command("extract", cmd_extract, "write a TF-slim zoo checkpoint (.meta/.index/.data)")
    sub.add_argument("name", help=ZOO_HINT)
    sub.add_argument("-o", "--output", required=True, help="output folder")
    sub.add_argument("--image-size", type=int, help="input size of a Keras application")
    _zoo_options(sub)

    sub = command("inspect", cmd_inspect, "inputs, candidate outputs, op counts, unsupported ops")
    sub.add_argument("model", help="a TF model (.meta, frozen .pb, ...) or an IR folder")
    sub.add_argument("-w", "--weights", type=Path, help="checkpoint prefix")
    sub.add_argument("--dst-node", action="append",
                     help="output node(s) to check as to-ir would (SavedModel/Keras: the "
                          "signature's by default): the ops on their value path and every "
                          "problem, exit 4 if there is one")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_argument("--svg", type=Path, metavar="FILE",
                     help="draw the graph with Graphviz (.svg, .png, .pdf or .dot)")
    sub.add_argument("--depth", type=int, metavar="N",
                     help="collapse name scopes below N parts (default: the deepest that "
                          "keeps the picture readable)")
    sub.add_argument("--tensorboard", type=Path, metavar="LOGDIR",
                     help="write the graph for TensorBoard")

    sub = command("to-ir", cmd_to_ir, "convert a TF model to the IR (graph.json + weights/)")
    _model_options(sub)
    sub.add_argument("--input", action="append", metavar="NAME",
                     help="input placeholder; repeat to set the order of forward's parameters "
                          "(default: the source's order (Keras model.inputs), else the graph's)")
    sub.add_argument("-o", "--output", required=True, help="IR folder to write")

    sub = command("build", cmd_build, "generate model.py + weights/ from an IR folder")
    sub.add_argument("ir_dir")
    sub.add_argument("-o", "--output", required=True, help="output folder")
    _build_options(sub)
    sub.add_argument("--no-check", action="store_true",
                     help="do not run the generated model on sample inputs before writing it "
                          "(only for a model that cannot run at the sample sizes: unknown "
                          "image sizes are drawn at 96 and 128 pixels)")

    sub = command("dump", cmd_dump, "pack OUT_DIR/weights into a state_dict .pth")
    sub.add_argument("out_dir")
    sub.add_argument("-o", "--output", required=True, help=".pth file to write")

    sub = command("verify", cmd_verify, "compare TensorFlow and the generated model")
    _model_options(sub)
    sub.add_argument("out_dir", help="folder with the generated model.py")
    _verify_options(sub)

    sub = command("convert", cmd_convert, "extract (for zoo names), to-ir, build and dump")
    sub.add_argument("model", help=f"a model file or folder (see to-ir), or a zoo name: {ZOO_HINT}")
    sub.add_argument("-w", "--weights", type=Path, help="checkpoint prefix")
    sub.add_argument("--dst-node", action="append",
                     help="output node (default: 'output' for .meta/.pb, the signature's outputs "
                          "for SavedModel/Keras)")
    sub.add_argument("--signature", default="serving_default", help="SavedModel signature")
    sub.add_argument("--bn-decay", type=float, default=None, help=argparse.SUPPRESS)
    sub.add_argument("-o", "--output", required=True, help="output folder")
    sub.add_argument("--verify", action="store_true", help="also run verify")
    _zoo_options(sub)
    _build_options(sub)
    _verify_options(sub)

    templates = commands.add_parser("templates", help="work with the Jinja templates")
    templates_commands = templates.add_subparsers(dest="templates_command", required=True)
    sub = templates_commands.add_parser("export", help="copy the default templates to DIR")
    sub.add_argument("dir")
    sub.set_defaults(run=cmd_templates_export)
    return main


def _zoo_options(sub) -> None:
    sub.add_argument("--random-weights", action="store_true",
                     help="deterministic random weights (offline), calibrated BatchNorm statistics")
    sub.add_argument("--seed", type=int, default=0, help="seed for --random-weights / inputs")
    sub.add_argument("--from-tarball", type=Path, help="an official TF-slim tarball on disk")


def _model_options(sub) -> None:
    sub.add_argument("model", type=Path, help=".meta (checkpoint graph), frozen .pb, a SavedModel "
                                              "folder, or a Keras .keras/.h5 file")
    sub.add_argument("-w", "--weights", type=Path, help="checkpoint prefix (default: beside .meta)")
    sub.add_argument("--dst-node", action="append",
                     help="output node; repeat for several (required for .meta/.pb; SavedModel "
                          "and Keras default to the signature's outputs)")
    sub.add_argument("--signature", default="serving_default",
                     help="SavedModel signature to convert (default: serving_default)")
    sub.add_argument("--bn-decay", type=float, default=None,
                     help="BatchNorm moving-average decay (Keras momentum; PyTorch's momentum is "
                          "1 - decay) for every BatchNorm (default: each layer's own, as a Keras "
                          "file, a tf_keras SavedModel or a training graph records it, else "
                          "TF-slim's 0.997, which to-ir then says)")


def _build_options(sub) -> None:
    sub.add_argument("--templates", type=Path, help="folder of templates overriding ours")
    sub.add_argument("--force", action="store_true",
                     help="overwrite a hand-edited model.py (kept as model.py.bak)")


def _verify_options(sub) -> None:
    sub.add_argument("--tolerance", type=float, default=1e-4,
                     help="max |PyTorch - TF| / max |TF| (default 1e-4)")
    sub.add_argument("--no-float64", action="store_true", help="skip the float64 reference run")
    sub.add_argument("--per-layer", action="store_true",
                     help="compare every layer with its TF tensor and show where errors start")
    sub.add_argument("--json", type=Path, metavar="FILE",
                     help="write the per-layer table as JSON (implies --per-layer)")
    sub.add_argument("--float64", action="store_true",
                     help="per-layer: also show how far TF float32 and ours are from our "
                          "float64 run (the whole-model lines always do, unless --no-float64)")
    sub.add_argument("--grad", action="store_true",
                     help="compare the gradients of sum(output * R) w.r.t. every input and "
                          "parameter with tf.gradients (eval mode)")
    sub.add_argument("--train", action="store_true",
                     help="Keras files: one training-mode batch, outputs and BatchNorm "
                          "running statistics against Keras")
    sub.add_argument("--inputs", type=Path, metavar="FILE.npz",
                     help="your own input arrays, one per input by its TF name (TF's layout), "
                          "instead of random ones (integer inputs get token ids in range of "
                          "their embedding table and masks with some padding)")
    if not any(a.dest == "seed" for a in sub._actions):
        sub.add_argument("--seed", type=int, default=0, help="seed for the random inputs")


MAX_DETAILS = 8


def _print_details(error: CodegenError) -> None:
    """The problems behind a one-line error, indented, at most MAX_DETAILS of them."""
    details = [d for d in error.details if d not in error.message]
    for detail in details[:MAX_DETAILS]:
        print(f"  {detail}", file=sys.stderr)
    if len(details) > MAX_DETAILS:
        print(f"  ... and {len(details) - MAX_DETAILS} more", file=sys.stderr)


_interrupted: list[int] = []  # the signal that stopped us, if one did


def _interrupt(signum, frame) -> None:
    _interrupted.append(signum)
    raise KeyboardInterrupt  # SIGTERM: clean up like Ctrl-C (staging folders are removed)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread (codegen used as a library)
        pass
    try:
        return int(args.run(args))
    except CodegenError as error:
        if args.debug:
            traceback.print_exc()
        print(f"codegen: error: {error.message}", file=sys.stderr)
        _print_details(error)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("codegen: interrupted; the previous output is unchanged", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - a bug: one line, and how to see more
        if _interrupted:  # the signal surfaced as another exception (e.g. inside a library)
            print("codegen: interrupted; the previous output is unchanged", file=sys.stderr)
            return int(Exit.INTERRUPTED)
        if args.debug:
            traceback.print_exc()
        print(f"codegen: internal error: {type(error).__name__}: {error} "
              "(re-run with --debug for the traceback and please report it)", file=sys.stderr)
        return int(Exit.ERROR)


def run() -> None:
    """The `codegen` command: main(), then leave without tearing the interpreter down.

    A conversion has imported TensorFlow (a build or verify, torch): unloading them at exit
    takes a quarter of a second and is of no use to a process that ends. Every file of ours
    is closed by now; only the standard streams need flushing. The cyclic garbage collector
    runs less often: with TensorFlow loaded, its default pace costs ~0.1 s per command.
    """
    gc.set_threshold(50_000, 20, 100)  # TF's and torch's many objects: collect less often
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`codegen inspect | head`)
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
