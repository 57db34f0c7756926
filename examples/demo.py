"""The README's first command (`make demo`): write a miniature ILSVRC2017 release in the real
layout, build both configs with the real `tfds build`, load them back with `tfds.load`, and
name the report each build wrote beside its dataset."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from imagenet2017_tfds import testing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build(config: str, manual_dir: Path, data_dir: Path, env: dict) -> None:
    command = [
        "tfds",
        "build",
        "imagenet2017",
        "--imports",
        "imagenet2017_tfds",
        "--config",
        config,
        "--manual_dir",
        str(manual_dir),
        "--data_dir",
        str(data_dir),
    ]
    print("$", " ".join(command), flush=True)
    log = data_dir / f"build-{config}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"tfds build failed; its output:\n{log.read_text()[-5000:]}")


def show(config: str, data_dir: Path) -> None:
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    builder = tfds.builder(f"imagenet2017/{config}", data_dir=str(data_dir))
    names = builder.info.metadata["class_names"]  # readable, in label order
    print(f"\nimagenet2017/{config}: {builder.data_dir}")
    order = ("train", "validation", "test")  # the build writes smallest first
    for split, info in sorted(builder.info.splits.items(), key=lambda s: order.index(s[0])):
        ds = tfds.load(f"imagenet2017/{config}", split=split, data_dir=str(data_dir))
        n = boxes = 0
        first = None
        for ex in tfds.as_numpy(ds):
            n += 1
            boxes += len(ex["objects"]["bbox"])
            first = first or ex
        line = f"  {split:14s} {n:3d} examples ({info.num_shards} shard), {boxes:3d} boxes"
        if config == "clsloc" and first["label"] >= 0:
            name = names[first["label"]]
            line += f"; e.g. {first['file_name'].decode()} {first['image'].shape} = {name}"
        elif len(first["objects"]["label"]):
            name = names[first["objects"]["label"][0]]
            line += f"; e.g. {first['file_name'].decode()} has a {name}"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "imagenet2017-demo")
    )
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    release = testing.write_release(work / "manual", form="tarball")
    print(f"Wrote a miniature ILSVRC2017 release to {release.manual_dir}:")
    for path in sorted(release.manual_dir.iterdir()):
        print(f"  {path.name:34s} {path.stat().st_size:>9,d} bytes")
    env = dict(os.environ, IMAGENET2017_CHECKSUMS=str(release.checksums), TF_CPP_MIN_LOG_LEVEL="2")
    os.environ.update(env)
    for config in ("clsloc", "det"):
        build(config, release.manual_dir, work / "data", env)
    for config in ("clsloc", "det"):
        show(config, work / "data")
    print(f"\nDone. Datasets in {work / 'data'}; load them with tfds.load(..., data_dir=...).")
    from imagenet2017_tfds import Imagenet2017, report

    for config in ("clsloc", "det"):  # each build wrote its own, beside its dataset_info.json
        page = work / "data" / "imagenet2017" / config / str(Imagenet2017.VERSION) / "report.html"
        if not page.is_file():
            print(f"error: the build of imagenet2017/{config} wrote no report at {page}")
            return 1
        print(
            f"Report of imagenet2017/{config}: {page} (open it in a browser; its numbers: "
            f"{report.json_path(page)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
