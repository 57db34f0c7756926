"""`imagenet2017-tfds`: tools around the builder: verify archives, write checksums files,
index archives ahead of a Beam build, build through Beam on a local engine, describe a built
dataset, draw examples."""

from __future__ import annotations

import argparse
import sys

from tqdm import auto as tqdm

from imagenet2017_tfds.errors import Imagenet2017Error
from imagenet2017_tfds.ilsvrc import checksums, inputs, tasks
from imagenet2017_tfds.internal import fileio, problems


def _archives(manual_dir: str) -> list[fileio.Path]:
    folder = fileio.path(manual_dir)
    if not folder.is_dir():
        raise Imagenet2017Error(
            f"{folder}: not a folder. Pass the folder holding the .tar.gz archives."
        )
    known = set(tasks.archive_files())
    found = sorted(p for p in folder.iterdir() if p.name in known or p.name.endswith(".tar.gz"))
    if not found:
        raise Imagenet2017Error(
            f"{folder}: no .tar.gz archive there; expected some of {', '.join(sorted(known))}."
        )
    return found


def _hash(path: fileio.Path, algorithms=checksums.DIGESTS) -> checksums.Record:
    with tqdm.tqdm(
        desc=path.name, total=path.stat().length, unit="B", unit_scale=True, leave=False
    ) as bar:
        return checksums.hash_file(path, algorithms, bar.update)


def cmd_checksums(args) -> int:
    records = [_hash(p) for p in _archives(args.manual_dir)]
    text = checksums.format_records(records)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        fileio.path(args.output).write_text(text)
        print(f"Wrote {args.output}; use it with {checksums.ENV_VAR}={args.output}")
    return 0


def cmd_verify(args) -> int:
    records, origin = checksums.load()
    print(f"Checking against {origin}")
    rows, failed = [], 0
    for path in _archives(args.manual_dir):
        record = records.get(path.name)
        # Only what can be compared (and the md5 the table shows): sha256 costs as much again.
        actual = _hash(
            path, ("md5", *(d for d in record.digests() if d != "md5")) if record else ("md5",)
        )
        if record is None or not record.digests():
            archive = tasks.archive_files().get(path.name)
            by_content = archive is not None and archive.by_content(path.name)
            verdict = "no published digest" + (
                " (checked by content when building)" if by_content else ""
            )
        else:
            bad = [n for n, v in record.digests().items() if getattr(actual, n) != v]
            if record.size is not None and record.size != actual.size:
                bad.insert(0, "size")
            verdict = "OK" if not bad else "MISMATCH: " + ", ".join(bad)
            failed += bool(bad)
        rows.append((path.name, str(actual.size), actual.md5, verdict))
    widths = [max(len(r[i]) for r in rows + [("file", "size", "md5", "verdict")]) for i in range(4)]
    for row in [("file", "size", "md5", "verdict"), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return 1 if failed else 0


def default_cache_dir() -> str:
    """Where `tfds build` looks by default: DATA_DIR/downloads/imagenet2017."""
    import os

    data_dir = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
    return os.path.join(data_dir, "downloads", "imagenet2017")


def _configs(name: str) -> tuple[tasks.Task, ...]:
    return tuple(tasks.TASKS.values()) if name == "all" else (tasks.task(name),)


def cmd_index(args) -> int:
    from imagenet2017_tfds.engine import prepare

    for task in _configs(args.config):
        try:
            found = inputs.locate(
                args.manual_dir, task.parts, args.cache_dir, task.name, task.optional
            )
        except Imagenet2017Error:
            if args.config != "all":
                raise
            continue
        cats, _ = prepare.scan_and_verify(
            found, args.cache_dir, args.allow_unverified, problems.Recorder()
        )
        for part, cat in cats.items():
            images = sum(len(v) for v in cat.images.values())
            print(f"{task.name}: {found.parts[part].name}: {images} images indexed")
    print(
        f"Index, catalog and verdicts in {args.cache_dir}; `tfds build` reuses them when its "
        f"--download_dir is {fileio.path(args.cache_dir).parent}."
    )
    return 0


def cmd_check(args) -> int:
    """One scan, every problem: what a build would stop on, in one table."""
    from imagenet2017_tfds.tools import check

    status = 0
    for task in _configs(args.config):
        try:
            report = check.run(args.manual_dir, task, args.allow_unverified, args.decode_train)
        except Imagenet2017Error as e:
            if args.config == "all" and "Missing:" in str(e):
                continue
            raise
        print(report.table())
        status = max(status, report.status)
    return status


def cmd_stats(args) -> int:
    from imagenet2017_tfds.tools import stats

    for config in (t.name for t in _configs(args.config)):
        if not (fileio.path(args.data_dir) / "imagenet2017" / config).exists():
            if args.config == "all":
                continue
            raise Imagenet2017Error(f"{args.data_dir}: no imagenet2017/{config} built there.")
        rows = [stats.HEADER] + [s.row() for s in stats.collect(args.data_dir, config)]
        print(f"imagenet2017/{config}\n{stats.table(rows)}\n")
    return 0


def cmd_show(args) -> int:
    from imagenet2017_tfds.tools import show

    n = show.grid(args.data_dir, args.config, args.split, args.n, args.output)
    print(f"Wrote {args.output} ({n} examples of imagenet2017/{args.config} {args.split})")
    return 0


def cmd_report(args) -> int:
    from imagenet2017_tfds import report

    report.write(args.data_dir, args.config, args.output, args.workers)
    print(
        f"Wrote {args.output} and {report.json_path(args.output)} "
        f"(imagenet2017/{args.config} in {args.data_dir})"
    )
    return 0


def cmd_beam_build(args) -> int:
    from imagenet2017_tfds.launch import beam_build

    return beam_build.main(args.launch_args)


CONFIGS = (*tasks.TASKS, "all")  # --config: one config, or every one


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="imagenet2017-tfds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "verify", help="check every archive in MANUAL_DIR against the checksums file"
    )
    p.add_argument("manual_dir")
    p.set_defaults(run=cmd_verify)
    p = sub.add_parser("checksums", help="write a checksums file for the archives in MANUAL_DIR")
    p.add_argument("manual_dir")
    p.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    p.set_defaults(run=cmd_checksums)
    p = sub.add_parser("index", help="verify and index the archives in MANUAL_DIR ahead of a build")
    p.add_argument("manual_dir")
    p.add_argument("--config", choices=CONFIGS, default="all")
    p.add_argument("--cache_dir", default=default_cache_dir(), help="default: %(default)s")
    p.add_argument("--allow_unverified", action="store_true")
    p.set_defaults(run=cmd_index)
    p = sub.add_parser(
        "check", help="scan the release once and report every problem a build would stop on"
    )
    p.add_argument("manual_dir")
    p.add_argument("--config", choices=CONFIGS, default="all")
    p.add_argument("--allow_unverified", action="store_true")
    p.add_argument("--decode_train", action="store_true", help="decode every train image too")
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("stats", help="per split: examples, boxes, blacklisted, class balance")
    p.add_argument("data_dir")
    p.add_argument("--config", choices=CONFIGS, default="all")
    p.set_defaults(run=cmd_stats)
    p = sub.add_parser("show", help="a PNG grid of examples with boxes and class names")
    p.add_argument("data_dir")
    p.add_argument("--config", choices=tuple(tasks.TASKS), default=tasks.DEFAULT.name)
    p.add_argument("--split", default="validation")
    p.add_argument("-n", type=int, default=16)
    p.add_argument("-o", "--output", default="grid.png")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("report", help="an HTML page (and its numbers as JSON) about a build")
    p.add_argument("data_dir")
    p.add_argument("--config", choices=("clsloc", "det"), default="clsloc")
    p.add_argument("-o", "--output", default="report.html", help="default: %(default)s")
    p.add_argument("--workers", type=int, default=None, help="default: one per core")
    p.set_defaults(run=cmd_report)
    # The launcher parses its own arguments (and its --help).
    p = sub.add_parser(
        "beam-build",
        help="build through Apache Beam on a local engine: Flink, Spark, Prism or direct "
        "(see beam-build --help)",
        add_help=False,
    )
    p.set_defaults(run=cmd_beam_build)
    args, rest = parser.parse_known_args(argv)
    if args.run is cmd_beam_build:
        args.launch_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.run(args)
    except Imagenet2017Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
