"""The ``miniclip`` command: one entry point, argparse subcommands.

Each subcommand is a thin layer over a plain function that tests and tutorials
call too.
"""

import argparse
import json
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

    p = sub.add_parser("info", help="print what was built (compiled extension, OpenMP, threads, BLAS)")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
