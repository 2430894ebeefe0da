"""The ``miniclip`` command: one entry point, argparse subcommands.

Each subcommand is a thin layer over a plain function that tests and tutorials
call too.
"""

import argparse
import json
import os
import sys


def _cmd_gradcheck(args):
    from . import gradcheck_suite
    from .backend import set_backend

    if args.backend:
        set_backend(args.backend)
    cases = gradcheck_suite.all_cases()
    if args.only:
        cases = [c for c in cases if any(word in c.name for word in args.only)]
        if not cases:
            raise SystemExit(f"miniclip gradcheck: no case matches {args.only}")
    failures = gradcheck_suite.run(cases, seed=args.seed)
    return 1 if failures else 0


def _cmd_info(args):
    from . import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def _cmd_convert(args):
    from .model.convert import convert_checkpoint

    out = convert_checkpoint(args.model, args.out)
    print(f"wrote {out}")
    return 0


def _cmd_data(args):
    from .data.shapes import run_data_command

    return run_data_command(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="miniclip",
        description="miniclip: a from-scratch CLIP in NumPy and Cython. "
                    "Run `miniclip <command> --help` for each command's options.")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("gradcheck", help="prove every op's backward against finite differences",
                       description="Gradient-check every op (and layer) in float64 with central "
                                   "differences and a random upstream gradient; print a table.")
    p.add_argument("--only", nargs="+", metavar="NAME", help="check only cases whose name contains NAME")
    p.add_argument("--backend", choices=("numpy", "compiled"), help="kernels to check (default: active)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and upstream gradients")
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser("convert", help="convert an original OpenAI CLIP checkpoint (.pt) to .npz",
                       description="Convert an original CLIP checkpoint (TorchScript archive or plain "
                                   "state dict) into an .npz that miniclip.build_model loads. Needs "
                                   "PyTorch only for reading the .pt file (pip install torch).")
    p.add_argument("model", help="the .pt file, e.g. ViT-B-32.pt")
    p.add_argument("out", help="the .npz to write (atomically)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("data", help="the shapes world: save a grid of samples, or export PNGs + CSV",
                       description="Draw the built-in shapes world. `miniclip data grid out.png` saves "
                                   "a grid of samples with their captions; `miniclip data export DIR "
                                   "--n N` writes N PNGs and a captions CSV (open_clip's convention).")
    from .data.shapes import add_data_commands
    add_data_commands(p.add_subparsers(dest="data_command", required=True, metavar="{grid,export}"))
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("info", help="print what was built (compiled extension, OpenMP, threads, BLAS)")
    p.set_defaults(func=_cmd_info)
    return parser


# Errors a user can cause (a missing file, a bad value): one clear line, no traceback.
# Set MINICLIP_TRACEBACK=1 to see the traceback anyway.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError, ImportError)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        if os.environ.get("MINICLIP_TRACEBACK"):
            raise
        print(f"miniclip {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
