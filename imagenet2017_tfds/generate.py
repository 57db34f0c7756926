"""Reading planned items back from their source and turning them into feature dicts.

The single-process path and every Beam worker call the same functions, so both write the
same examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from imagenet2017_tfds import images
from imagenet2017_tfds.errors import ImageError
from imagenet2017_tfds.examples import Item
from imagenet2017_tfds.problems import Recorder
from imagenet2017_tfds.sources import Entry, Source
from imagenet2017_tfds.tasks import Task


def features(task: Task, item: Item, data: bytes, source_name: str, decode: bool) -> dict:
    where = f"{source_name}: {item.path}"
    image = images.storable_jpeg(data, where)
    if decode:
        images.check_decodes(image, where)
    ex = task.example(item, image)
    # BBoxFeature wants arrays (or its own BBox type) rather than plain tuples.
    ex["objects"]["bbox"] = [np.asarray(b, np.float64) for b in ex["objects"]["bbox"]]
    return ex


def keyed_examples(
    task: Task,
    source: Source,
    items: list[tuple[Entry, Item]],
    recorder: Recorder,
    decode: bool = False,
) -> Iterator[tuple[str, dict]]:
    """(key, features) for `items`, read in their order (sorted by offset: one forward pass).
    A bad image goes to `recorder`: it stops the build, or is skipped and recorded. With
    `decode`, every image is also decoded fully once."""
    by_entry = dict(items)
    for entry, data in source.read([e for e, _ in items]):
        item = by_entry[entry]
        try:
            ex = features(task, item, data, source.name, decode)
        except ImageError as e:
            recorder.problem("image", item.path, e)
            continue
        yield item.key, ex
