"""Reading planned items back from their source and turning them into feature dicts.

The single-process path and every Beam worker call the same functions, so both write the
same examples.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from imagenet2017_tfds import examples, images, plans
from imagenet2017_tfds.errors import ImageError
from imagenet2017_tfds.sources import Entry, Source


def features(config: str, item: examples.Item, data: bytes, label: str) -> dict:
    where = f"{label}: {item.path}"
    image = images.storable_jpeg(data, where)
    if config == "clsloc":
        ex = examples.clsloc_example(
            item, image, lambda name, it: plans.clsloc_object_label(name, it.label)
        )
    else:
        ex = examples.det_example(item, image, lambda name, it: plans.det_object_label(name, where))
    # BBoxFeature wants arrays (or its own BBox type) rather than plain tuples.
    ex["objects"]["bbox"] = [np.asarray(b, np.float64) for b in ex["objects"]["bbox"]]
    return ex


def keyed_examples(
    config: str,
    source: Source,
    items: list[tuple[Entry, examples.Item]],
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[tuple[str, dict]]:
    """(key, features) for `items`, read in their order (sorted by offset: one forward pass).

    With `skipped` (skip_bad_members), a bad image is logged and recorded there instead of
    stopping the build.
    """
    by_entry = dict(items)
    for entry, data in source.read([e for e, _ in items]):
        item = by_entry[entry]
        try:
            ex = features(config, item, data, source.label)
        except ImageError as e:
            if skipped is None:
                raise
            logging.warning("Skipping %s", e)
            skipped.append((item.path, str(e)))
            continue
        yield item.key, ex
