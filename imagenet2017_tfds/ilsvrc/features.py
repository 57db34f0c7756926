"""Each config's FeaturesDict, in a module of its own: the builder and every worker process
(which never imports the builder) make the same features from it. TFDS is imported when a
function is called, so `tasks` stays plain Python."""

from __future__ import annotations


def clsloc(names: list[str]):
    import numpy as np
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=names),
            "file_name": tfds.features.Text(),
            "annotated": np.bool_,
            "blacklisted": np.bool_,
            "objects": tfds.features.Sequence(
                {
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=names),
                }
            ),
        }
    )


def det(names: list[str]):
    import numpy as np
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(encoding_format="jpeg"),
            "file_name": tfds.features.Text(),
            "annotated": np.bool_,
            "objects": tfds.features.Sequence(
                {
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=names),
                    "subcategory": tfds.features.Text(),
                    "blacklisted": np.bool_,
                }
            ),
        }
    )
