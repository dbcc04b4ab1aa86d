"""`python -m benchmark.data generate|stats|show|export|compare`: data tools for people."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, Sequence

import numpy as np

from benchmark.errors import BenchmarkError


def _source(path: str):
    from benchmark.data.larcv import LarcvSource

    if not os.path.exists(path):
        raise BenchmarkError(f"{path}: no such file")
    return LarcvSource(path)


def _entry(source, entry: int) -> int:
    if not 0 <= entry < len(source):
        raise BenchmarkError(f"{source.path}: --entry {entry} is out of range (the file has {len(source)} events)")
    return entry


def cmd_generate(args: argparse.Namespace) -> int:
    from benchmark.data.dataset import generate

    counts = {"train": args.train, "val": args.val, "test": args.test}
    compression = None if args.compression == "none" else args.compression
    manifest = generate(args.out, counts, args.seed, workers=args.workers, compression=compression)
    for name, entry in manifest["files"].items():
        print(f"{os.path.join(args.out, name)}: {entry['events']} events, sha256 {entry['sha256']}")
    print(f"{os.path.join(args.out, 'manifest.json')}: generator version {manifest['generator_version']}, seed {args.seed}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from benchmark.data.stats import event_stats

    source = _source(args.file)
    entries = range(len(source)) if args.entry is None else [_entry(source, args.entry)]
    result = [{"entry": i, **event_stats(source.read(i))} for i in entries]
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Read and validate every entry, so a corrupt file is found before a run starts."""
    source = _source(args.file)
    voxels = 0
    for entry in range(len(source)):
        event = source.read(entry)
        biggest = max(event.n_voxels)
        if 0 < args.max_voxels < biggest:
            raise BenchmarkError(f"{args.file}: entry {entry} holds a plane of {biggest} voxels, more than --max-voxels {args.max_voxels}")
        voxels += sum(event.n_voxels)
    rows, cols = source.full_shape
    print(f"{args.file}: {len(source)} events of 3x{rows}x{cols}, {voxels:,} charged voxels, all consistent")
    return 0


def _summary(path: str, limit: Optional[int]):
    from benchmark.data.stats import summarize

    source = _source(path)
    count = len(source) if limit is None else min(limit, len(source))
    return summarize(source.read(i) for i in range(count)), count


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.data.stats import compare

    (a, n_a), (b, n_b) = _summary(args.file_a, args.events), _summary(args.file_b, args.events)
    rows = compare(a, b)
    width = max(len(str(r[0])) for r in rows)
    print(f"{'quantity'.ljust(width)}  {'A':>12}  {'B':>12}  {'B/A':>7}")
    print(f"{'(events)'.ljust(width)}  {n_a:>12}  {n_b:>12}")
    for quantity, value_a, value_b, ratio in rows:
        ratio_text = "" if ratio is None else f"{ratio:7.2f}"
        print(f"{str(quantity).ljust(width)}  {_fmt(value_a):>12}  {_fmt(value_b):>12}  {ratio_text}")
    print(f"A = {args.file_a}\nB = {args.file_b}")
    return 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _dense_event(source, entry: int, downsample: int):
    from benchmark.data.pipeline import load_batch

    image, label = load_batch(source, [entry], downsample).dense()
    return image[0], label[0]


def cmd_export(args: argparse.Namespace) -> int:
    source = _source(args.file)
    image, label = _dense_event(source, _entry(source, args.entry), args.downsample)
    np.savez_compressed(args.out, image=image, label=label)
    print(f"{args.out}: image float32 {list(image.shape)}, label uint8 {list(label.shape)}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from benchmark.data.render import render_event

    source = _source(args.file)
    entry = _entry(source, args.entry)
    image, label = _dense_event(source, entry, args.downsample)
    prediction = None
    if args.prediction:
        from benchmark.data.predictions import read_prediction

        prediction = read_prediction(args.prediction, entry, args.downsample)
    render_event(image, label, prediction, title=f"{os.path.basename(args.file)} entry {entry}", out=args.out)
    print(f"{args.out}: entry {entry}, {image.shape[1]}x{image.shape[2]} per plane")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m benchmark.data", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a generated larcv3 dataset and its manifest")
    gen.add_argument("--out", required=True, help="folder for cosmic_tagging_{train,val,test}.h5 and manifest.json")
    gen.add_argument("--train", type=int, default=1000)
    gen.add_argument("--val", type=int, default=200)
    gen.add_argument("--test", type=int, default=200)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--workers", type=int, default=None, help="generator processes (default: cores - 1)")
    gen.add_argument("--compression", choices=("none", "gzip"), default="none",
                     help="none (default): ~2.6 MB per event, fast to read; gzip: larcv3's default, a third of the size")
    gen.set_defaults(run=cmd_generate)

    stats = sub.add_parser("stats", help="per-event, per-plane statistics as JSON")
    stats.add_argument("file")
    stats.add_argument("--entry", type=int, default=None, help="one entry (default: all)")
    stats.set_defaults(run=cmd_stats)

    check = sub.add_parser("check", help="read and validate every entry of a file")
    check.add_argument("file")
    check.add_argument("--max-voxels", type=int, default=0, help="also refuse planes with more voxels (0: no limit)")
    check.set_defaults(run=cmd_check)

    show = sub.add_parser("show", help="the three planes of one event as a PNG: charge and labels (and predictions)")
    show.add_argument("file")
    show.add_argument("--entry", type=int, default=0)
    show.add_argument("--out", required=True)
    show.add_argument("--downsample", type=int, default=1)
    show.add_argument("--prediction", default=None, help="a predictions file written by mode=inference")
    show.set_defaults(run=cmd_show)

    export = sub.add_parser("export", help="one event as dense arrays in an NPZ file")
    export.add_argument("file")
    export.add_argument("--entry", type=int, default=0)
    export.add_argument("--downsample", type=int, default=0)
    export.add_argument("--out", required=True)
    export.set_defaults(run=cmd_export)

    compare = sub.add_parser("compare", help="the statistics of two files side by side")
    compare.add_argument("file_a")
    compare.add_argument("file_b")
    compare.add_argument("--events", type=int, default=None, help="use the first N events of each file")
    compare.set_defaults(run=cmd_compare)
    return top


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    for name in ("downsample", "events"):
        if getattr(args, name, None) is not None and getattr(args, name) < 0:
            print(f"error: --{name} must be >= 0", file=sys.stderr)
            return 2
    try:
        return args.run(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except ValueError as exc:  # e.g. a downsampling the image cannot take
        print(f"error: {exc}", file=sys.stderr)
        return 2


def entry_point(argv: Optional[List[str]] = None) -> None:
    sys.exit(main(sys.argv[1:] if argv is None else argv))
