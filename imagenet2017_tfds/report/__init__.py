"""`imagenet2017-tfds report`: one self-contained HTML page about a built dataset, and beside
it a JSON file of every number the page shows.

    numbers.py    SplitNumbers: one split's numbers, fed an example at a time, mergeable
    reading.py    a built dataset's shards read back (either format, local or in a store)
    shards.py     the built dataset's shards read once, in parallel, into SplitNumbers
    published.py  the release's published split sizes, and what explains a difference
    svg.py        the plots, as inline SVG
    page.py       the JSON and the HTML page

`tfds build` writes the report too (`of_build`, unless the config's `report` option is off),
from the numbers its executors computed while they wrote the shards.
"""

from __future__ import annotations

import json
import os

from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal import fileio
from imagenet2017_tfds.report import reading

# How the numbers were had ("made" in the JSON, said on the page): the only field in which a
# build's report and the command's report of the same dataset differ.
MADE_BY_BUILD = "by the build, as it wrote the shards"
MADE_FROM_SHARDS = "from the shards, read once"
# The build's report, in the dataset's version folder beside dataset_info.json.
BUILD_REPORT = "report.html"


def write(data_dir: str, config: str, output: str, workers: int | None = None) -> dict:
    """Reads the dataset built in DATA_DIR, writes OUTPUT (HTML) and OUTPUT's .json beside it;
    returns the JSON's content."""
    from imagenet2017_tfds.report import shards

    folder = reading.dataset_folder(data_dir, config)
    splits = shards.read(data_dir, config, workers)
    metadata = fileio.read_json(folder / "metadata.json") or {}
    info = fileio.read_json(folder / "dataset_info.json") or {}
    return write_numbers(output, config, splits, metadata, info, MADE_FROM_SHARDS)


def write_numbers(output, config: str, splits: dict, metadata: dict, info: dict, made: str) -> dict:
    """Writes OUTPUT (HTML) and OUTPUT's .json beside it from computed numbers (split ->
    SplitNumbers), the dataset's metadata.json and dataset_info.json content; returns the
    JSON's content. Both the command and the build write their reports here."""
    import imagenet2017_tfds
    from imagenet2017_tfds.report import page

    names = metadata.get("class_names") or tasks.class_names(config)
    # The splits by name: one order whichever executor built them (dataset_info.json lists
    # them in the order they were written).
    splits = {split: splits[split] for split in sorted(splits)}
    numbers = page.numbers_json(
        config, splits, metadata, info, names, imagenet2017_tfds.__version__
    )
    numbers["made"] = made
    target = fileio.path(output)
    fileio.path(json_path(output)).write_text(json.dumps(numbers, indent=1) + "\n")
    target.write_text(page.html_page(numbers, splits, names))
    return numbers


def of_build(folder: str | os.PathLike, config: str, splits: dict | None, info) -> None:
    """The build's report (BUILD_REPORT and its JSON) in the dataset's folder, from the numbers
    the build computed (None: the `report` option is off, nothing is written). `info`: TFDS's
    DatasetInfo of the build, whose metadata and files are written after this."""
    if splits is None:
        return
    facts = {"version": str(info.version), "fileFormat": info.file_format.value}
    output = fileio.path(folder) / BUILD_REPORT
    write_numbers(output, config, splits, dict(info.metadata), facts, MADE_BY_BUILD)
    print(f"imagenet2017: wrote the build's report, {output}", flush=True)


def json_path(output: str) -> str:
    """FILE.html -> FILE.json (any other name: NAME.json)."""
    text = str(output)
    return (text[: -len(".html")] if text.endswith(".html") else text) + ".json"
