"""``anomamind data ...``: fetch public archives, summarise a data spec, write synthetic CSVs."""

from __future__ import annotations

import argparse
import sys

from anomamind.cli_options import add_deprecated_alias


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its ``fetch``, ``info`` and ``synth`` subcommands."""
    data = subparsers.add_parser("data", help="fetch, inspect or generate data sets")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: _usage(data))

    fetch = sub.add_parser("fetch", help="download, verify and unpack a public archive (resumable)")
    fetch.add_argument("source", help="name of a source in configs/data.yaml, e.g. tsb-ad-u or loghub-bgl")
    where = fetch.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="folder to download and unpack into")
    add_deprecated_alias(where, "--dest", "--out DIR", lambda v: ("out", v, f"--out {v}"), metavar="DIR")
    fetch.add_argument("--url", help="override the configured URL (a mirror)")
    fetch.add_argument("--sha256", help="expected SHA-256 of the archive (overrides the config)")
    fetch.add_argument("--md5", help="expected MD5 of the archive, as Zenodo lists it (overrides the config)")
    fetch.add_argument("--archive", help="unpack this local archive instead of downloading")
    fetch.add_argument("--config", help="data config file (default: configs/data.yaml)")
    fetch.add_argument("--delete-archive", action="store_true", help="remove the zip after unpacking")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(func=_fetch)

    info = sub.add_parser("info", help="load a data spec and summarise it (counts, lengths, failures)")
    info.add_argument("spec", help="'synthetic', 'synthetic:N', a CSV file, a folder, or an EasyTSAD root")
    info.add_argument("--datasets", nargs="+", help="keep only these datasets")
    info.add_argument("--nan-policy", choices=("interpolate", "reject"), default="interpolate",
                      help="missing values: interpolate them (default) or reject the file")
    info.add_argument("--min-length", type=int, default=1, help="skip series shorter than this (default 1)")
    info.set_defaults(func=_info)

    synth = sub.add_parser("synth", help="write the synthetic TODS-style set as TSB-AD-U CSVs")
    synth.add_argument("--out", required=True, help="folder to write the CSVs into")
    synth.add_argument("--n-series", type=int, default=8, help="how many series (default 8)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the generator (default 0)")
    synth.add_argument("--length", type=int, default=5000, help="points per series (default 5000)")
    synth.set_defaults(func=_synth)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fetch(args: argparse.Namespace) -> int:
    from anomamind.envs.fetch import DATA_CONFIG, fetch
    from anomamind.types import DataError

    try:
        fetch(
            args.source,
            args.out,
            url=args.url,
            sha256=args.sha256,
            md5=args.md5,
            archive=args.archive,
            config=args.config or DATA_CONFIG,
            keep_archive=not args.delete_archive,
            progress=not args.no_progress,
        )
    except DataError as err:
        print(f"anomamind data fetch: {err}", file=sys.stderr)
        return 1
    return 0


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from anomamind.envs.datasets import resolve_data
    from anomamind.types import DataError

    try:
        result = resolve_data(args.spec, datasets=args.datasets, nan_policy=args.nan_policy, min_length=args.min_length)
    except DataError as err:
        print(f"anomamind data info: {err}", file=sys.stderr)
        return 1
    print(f"{'dataset':<12} {'series':>6} {'points':>10} {'min len':>8} {'max len':>8} {'anomaly %':>9}")
    for name in result.datasets:
        group = [s for s in result.series if s.dataset == name]
        lengths = np.array([len(s) for s in group])
        labelled = [s for s in group if s.labels is not None]
        anomalous = sum(int(s.labels.sum()) for s in labelled)
        share = f"{100 * anomalous / sum(len(s) for s in labelled):>8.2f}%" if labelled else f"{'no labels':>9}"
        print(f"{name:<12} {len(group):>6} {lengths.sum():>10} {lengths.min():>8} {lengths.max():>8} {share}")
    for path, message in result.failures:
        print(f"skipped: {message}")
    if not result.series:
        print(f"anomamind data info: {args.spec}: no series could be loaded", file=sys.stderr)
        return 1
    return 0


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anomamind.envs.synthetic import generate_dataset, write_tsbad_csv
    from anomamind.types import DataError

    try:
        series = generate_dataset(n_series=args.n_series, seed=args.seed, length=args.length)
    except DataError as err:
        print(f"anomamind data synth: {err}", file=sys.stderr)
        return 1
    out = Path(args.out) / "SYNTHETIC"
    for s in series:
        write_tsbad_csv(s, out)
    print(f"wrote {len(series)} series to {out}")
    return 0
