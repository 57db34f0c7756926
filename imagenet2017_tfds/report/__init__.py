"""`imagenet2017-tfds report`: one self-contained HTML page about a built dataset, and beside
it a JSON file of every number the page shows.

    numbers.py    SplitNumbers: one split's numbers, fed an example at a time, mergeable
    shards.py     the built dataset's shards read once, in parallel, into SplitNumbers
    published.py  the release's published split sizes, and what explains a difference
    svg.py        the plots, as inline SVG
    page.py       the JSON and the HTML page
"""

from __future__ import annotations

import json

from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal import fileio
from imagenet2017_tfds.tools import reading


def write(data_dir: str, config: str, output: str, workers: int | None = None) -> dict:
    """Reads the dataset built in DATA_DIR, writes OUTPUT (HTML) and OUTPUT's .json beside it;
    returns the JSON's content."""
    import imagenet2017_tfds
    from imagenet2017_tfds.report import page, shards

    folder = reading.dataset_folder(data_dir, config)
    splits = shards.read(data_dir, config, workers)
    metadata = fileio.read_json(folder / "metadata.json") or {}
    info = fileio.read_json(folder / "dataset_info.json") or {}
    names = metadata.get("class_names") or tasks.class_names(config)
    numbers = page.numbers_json(
        config, splits, metadata, info, names, imagenet2017_tfds.__version__
    )
    target = fileio.path(output)
    fileio.path(json_path(output)).write_text(json.dumps(numbers, indent=1) + "\n")
    target.write_text(page.html_page(numbers, splits, names))
    return numbers


def json_path(output: str) -> str:
    """FILE.html -> FILE.json (any other name: NAME.json)."""
    text = str(output)
    return (text[: -len(".html")] if text.endswith(".html") else text) + ".json"
