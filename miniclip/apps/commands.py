"""``miniclip index | search | tag | serve``: the argparse side of the apps (the work is in their modules)."""

import argparse
import json
import sys

DEFAULT_PORT = 8000
BIND = "127.0.0.1"  # loopback only: the page is for the person at this machine


def _positive(flag, value):
    if value < 1:
        raise ValueError(f"{flag}: expected an integer >= 1, got {value}")


def _cmd_index(args):
    from .index import build_index, summary_lines

    _positive("--batch-size", args.batch_size)
    try:
        index = build_index(args.dir, args.model, args.out, batch_size=args.batch_size,
                            progress=not args.no_progress, rebuild=args.rebuild)
    except KeyboardInterrupt:  # the index is written once, atomically, at the end: nothing half-done is left
        print(f"miniclip index: interrupted; {args.out} is as it was", file=sys.stderr)
        return 130
    for line in summary_lines(index):
        print(line)
    return 0


def _cmd_search(args):
    from .search import search_index_file

    _positive("--top", args.top)
    if (args.text is None) == (args.image is None):
        raise ValueError('give a query text ("a red star") or --image FILE, not both nor neither')
    results = search_index_file(args.index, text=args.text, image=args.image, k=args.top, model=args.model)
    if args.json:
        print(json.dumps([{key: r[key] for key in ("rank", "path", "score")} for r in results], indent=2))
        return 0
    for r in results:
        print(f"{r['rank']:>4}  {r['score']:+.4f}  {r['path']}")
    return 0


def _cmd_tag(args):
    from ..evaluation.zeroshot import parse_labels
    from .tag import tag_folder, tag_summary, write_tags_csv

    labels = parse_labels(args.labels)
    _positive("--top", args.top)
    _positive("--batch-size", args.batch_size)
    try:
        rows, skipped = tag_folder(args.dir, args.model, labels, templates=args.template or ["{}"], top=args.top,
                                   batch_size=args.batch_size, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"miniclip tag: interrupted; {args.out} is as it was", file=sys.stderr)
        return 130
    out = write_tags_csv(rows, args.out, min(args.top, len(labels)))
    for line in tag_summary(rows, skipped, out):
        print(line)
    return 0


def _cmd_serve(args):
    from .serve import serve

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port: expected 0..65535, got {args.port}")
    return serve(args.model, index=args.index, host=args.host, port=args.port, templates=args.template)


def _folder_arguments(p, model_help):
    """What index and tag share: the folder, the model, the batch and the progress bar."""
    p.add_argument("dir", metavar="DIR", help="folder of images (searched recursively)")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_app_commands(sub):
    """The four subcommands, added to ``miniclip``'s subparsers."""
    model_help = "run folder, model.npz or checkpoints/step_*.npz"

    p = sub.add_parser("index", help="embed every image of a folder into a searchable index",
                       description="Embed every image under DIR (recursively; png, jpg, gif, bmp, tiff, webp, ppm; "
                                   "any mode or size) with the model and write INDEX.npz: the paths, their "
                                   "L2-normalized embeddings and the model's fingerprint (a hash of its weights). "
                                   "Run it again to update the index: only new files and files whose size or "
                                   "modification time changed are embedded again. Unreadable files are skipped "
                                   "and listed in one line.",
                       epilog="example: miniclip index shapes/images --model runs/shapes-1 --out shapes.npz")
    _folder_arguments(p, model_help)
    p.add_argument("--out", required=True, metavar="INDEX.npz", help="the index to write (atomically) or update")
    p.add_argument("--rebuild", action="store_true", help="embed every image again (to switch models or folders)")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser("search", help="search an index by text or by image",
                       description="Print the images of INDEX most similar to a text or to an image, with their "
                                   "cosine similarity: exact search, one matrix product over the whole index "
                                   "(milliseconds up to about 100,000 images; beyond a million, an approximate "
                                   "nearest-neighbour index such as FAISS or HNSW). The query is embedded by the index's own model.",
                       epilog='examples:\n  miniclip search shapes.npz "a red star"\n'
                              "  miniclip search shapes.npz --image query.png --top 5 --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("index", metavar="INDEX.npz")
    p.add_argument("text", nargs="?", metavar="TEXT", help="what to look for")
    p.add_argument("--image", metavar="FILE", help="look for images like this one instead")
    p.add_argument("--top", type=int, default=10, help="results (default: 10)")
    p.add_argument("--model", help="the model to embed the query (default: the index's own; another one is refused)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {rank, path, score}")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("tag", help="label every image of a folder (zero-shot) into a CSV",
                       description="Classify every image under DIR among --labels (zero-shot: softmax of 100 x "
                                   "cosine similarity with each label's text embedding, templates averaged) and "
                                   "write a CSV: path, then the --top labels and their probabilities, best first.",
                       epilog='example: miniclip tag shapes/images --model runs/shapes-1 '
                              '--labels "red circle,blue star,green square" --out tags.csv')
    _folder_arguments(p, model_help)
    p.add_argument("--labels", required=True, help="comma-separated names")
    p.add_argument("--template", action="append", metavar="TEXT",
                   help="prompt template with {} for the label; repeat to ensemble (default: the label alone)")
    p.add_argument("--top", type=int, default=3, help="labels kept per image (default: 3)")
    p.add_argument("--out", required=True, metavar="TAGS.csv", help="the CSV to write (atomically)")
    p.set_defaults(func=_cmd_tag)

    p = sub.add_parser("serve", help="a local page: draw a shape and the model names it (needs .[demo])",
                       description="Serve a page on this machine only (127.0.0.1): draw on a canvas or upload an "
                                   "image and see the model's zero-shot probabilities over labels you can edit "
                                   "(default: the 48 shapes-world names); with --index, search it by text and "
                                   "see thumbnails. Needs Flask: pip install -e \".[demo]\". Ctrl-C stops it.",
                       epilog="example: miniclip serve runs/shapes-1 --index shapes.npz   (then open "
                              f"http://{BIND}:{DEFAULT_PORT})")
    p.add_argument("model", metavar="RUN_OR_NPZ", help=model_help)
    p.add_argument("--index", metavar="INDEX.npz", help="an index made by miniclip index with the same model")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free one)")
    p.add_argument("--host", default=BIND, help=f"address to listen on (default: {BIND}, this machine only)")
    p.add_argument("--template", action="append", metavar="TEXT",
                   help="prompt template with {} for the label; repeat to ensemble (default: the shapes world's "
                        "evaluation templates)")
    p.set_defaults(func=_cmd_serve)
