"""The `codegen` command line.

extract -> to-ir -> build -> dump -> verify, or `convert` for all of them. TensorFlow and
torch are imported only by the commands that need them, so `codegen --help` is instant
and `codegen build` runs without TensorFlow.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from pathlib import Path

from codegen.errors import CodegenError, Exit, InputError

ZOO_HINT = "resnet_v2_152, resnet_v1_50, vgg_16, inception_v3, ... (see 'codegen extract --help')"


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


# -- commands ---------------------------------------------------------------------------------
def cmd_extract(args) -> int:
    from codegen.frontends.tensorflow import zoo

    prefix = zoo.extract(args.name, Path(args.output), random_weights=args.random_weights,
                         seed=args.seed, tarball=args.from_tarball, progress=not args.quiet)
    print(f"{prefix}.meta")
    return Exit.OK


def cmd_inspect(args) -> int:
    from codegen.inspection import inspect_model, print_report

    report = inspect_model(Path(args.model), args.weights)
    print_report(report, as_json=args.json)
    return Exit.OK


def cmd_to_ir(args) -> int:
    from codegen.frontends.tensorflow.to_ir import to_ir

    start = time.perf_counter()
    graph = to_ir(Path(args.model), args.weights, args.dst_node, Path(args.output),
                  bn_decay=args.bn_decay, quiet=args.quiet)
    _say(args, f"wrote {args.output}/graph.json: {len(graph.nodes)} nodes, "
               f"{len(graph.weights)} weights ({time.perf_counter() - start:.1f} s)")
    return Exit.OK


def cmd_build(args) -> int:
    from codegen.backends.pytorch.build import build

    start = time.perf_counter()
    report = build(Path(args.ir_dir), Path(args.output), templates=args.templates,
                   force=args.force, quiet=args.quiet)
    merged = ", your edits merged" if report.merged else ""
    _say(args, f"wrote {report.out_dir}/model.py: {report.classes} classes, {report.lines} lines, "
               f"{report.parameters:,} parameters; weights: {report.weights_written} written, "
               f"{report.weights_kept} unchanged{merged} ({time.perf_counter() - start:.1f} s)")
    for note in report.notes:
        _say(args, f"note: {note}")
    return Exit.OK


def cmd_dump(args) -> int:
    from codegen.dump import dump

    count = dump(Path(args.out_dir), Path(args.output))
    _say(args, f"wrote {args.output}: {count} tensors")
    return Exit.OK


def cmd_verify(args) -> int:
    from codegen.errors import MismatchError
    from codegen.verify import verify

    results = verify(Path(args.model), args.weights, Path(args.out_dir), seed=args.seed,
                     float64=not args.no_float64)
    worst = 0.0
    for r in results:
        line = (f"batch {r.batch}: {r.output} {list(r.shape)}  max|PyTorch - TF| / max|TF| = "
                f"{r.rel_error:.3g}")
        if r.ours_vs_f64 is not None:
            line += f"  (vs float64: TF {r.tf_vs_f64:.3g}, ours {r.ours_vs_f64:.3g})"
        print(line)
        worst = max(worst, r.rel_error)
    if worst > args.tolerance:
        raise MismatchError(f"PyTorch and TensorFlow differ by {worst:.3g} > tolerance "
                            f"{args.tolerance:g}; run 'codegen verify' on a smaller model to narrow it down")
    print(f"ok: worst relative error {worst:.3g} <= {args.tolerance:g}")
    return Exit.OK


def cmd_convert(args) -> int:
    from codegen.backends.pytorch.build import build
    from codegen.dump import dump
    from codegen.frontends.tensorflow import zoo
    from codegen.frontends.tensorflow.to_ir import to_ir

    out = Path(args.output)
    model, weights = Path(args.model), args.weights
    if args.model in zoo.ZOO:
        prefix = zoo.extract(args.model, out / "checkpoint", random_weights=args.random_weights,
                             seed=args.seed, tarball=args.from_tarball, progress=not args.quiet)
        model, weights = Path(f"{prefix}.meta"), prefix
    elif not model.exists():
        raise InputError(f"{model}: neither a model file nor a zoo name ({ZOO_HINT})")
    dst = args.dst_node or ["output"]
    to_ir(model, weights, dst, out / "ir", bn_decay=args.bn_decay, quiet=args.quiet)
    report = build(out / "ir", out / "model", templates=args.templates, force=args.force,
                   quiet=args.quiet)
    dump(out / "model", out / "model.pth")
    _say(args, f"wrote {out}/model/model.py ({report.classes} classes, {report.lines} lines), "
               f"{out}/model/weights/, {out}/model.pth")
    if args.verify:
        args.out_dir, args.model, args.weights, args.no_float64 = out / "model", model, weights, False
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
    _zoo_options(sub)

    sub = command("inspect", cmd_inspect, "inputs, candidate outputs, op counts, unsupported ops")
    sub.add_argument("model", help=".meta, frozen .pb, or an IR folder")
    sub.add_argument("-w", "--weights", type=Path, help="checkpoint prefix")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = command("to-ir", cmd_to_ir, "convert a TF model to the IR (graph.json + weights/)")
    _model_options(sub, dst_required=True)
    sub.add_argument("-o", "--output", required=True, help="IR folder to write")

    sub = command("build", cmd_build, "generate model.py + weights/ from an IR folder")
    sub.add_argument("ir_dir")
    sub.add_argument("-o", "--output", required=True, help="output folder")
    _build_options(sub)

    sub = command("dump", cmd_dump, "pack OUT_DIR/weights into a state_dict .pth")
    sub.add_argument("out_dir")
    sub.add_argument("-o", "--output", required=True, help=".pth file to write")

    sub = command("verify", cmd_verify, "compare TensorFlow and the generated model")
    _model_options(sub, dst_required=False)
    sub.add_argument("out_dir", help="folder with the generated model.py")
    _verify_options(sub)

    sub = command("convert", cmd_convert, "extract (for zoo names), to-ir, build and dump")
    sub.add_argument("model", help=f"a .meta/.pb file or a zoo name: {ZOO_HINT}")
    sub.add_argument("-w", "--weights", type=Path, help="checkpoint prefix")
    sub.add_argument("--dst-node", action="append", help="output node (default: output)")
    sub.add_argument("--bn-decay", type=float, default=0.997, help=argparse.SUPPRESS)
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


def _model_options(sub, dst_required: bool) -> None:
    sub.add_argument("model", type=Path, help=".meta (checkpoint graph) or frozen .pb")
    sub.add_argument("-w", "--weights", type=Path, help="checkpoint prefix (default: beside .meta)")
    sub.add_argument("--dst-node", action="append", required=dst_required,
                     help="output node; repeat for several")
    sub.add_argument("--bn-decay", type=float, default=0.997,
                     help="BatchNorm moving-average decay (momentum = 1 - decay) when the graph "
                          "does not record it (default: TF-slim ResNet's 0.997)")


def _build_options(sub) -> None:
    sub.add_argument("--templates", type=Path, help="folder of templates overriding ours")
    sub.add_argument("--force", action="store_true",
                     help="overwrite a hand-edited model.py (kept as model.py.bak)")


def _verify_options(sub) -> None:
    sub.add_argument("--tolerance", type=float, default=1e-4,
                     help="max |PyTorch - TF| / max |TF| (default 1e-4)")
    sub.add_argument("--no-float64", action="store_true", help="skip the float64 reference run")
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


def _interrupt(signum, frame) -> None:
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
        if args.debug:
            traceback.print_exc()
        print(f"codegen: internal error: {type(error).__name__}: {error} "
              "(re-run with --debug for the traceback and please report it)", file=sys.stderr)
        return int(Exit.ERROR)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
