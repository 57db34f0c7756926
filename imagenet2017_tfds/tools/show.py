"""`imagenet2017-tfds show`: a PNG grid of examples with their boxes and class names, for a
person to look at."""

from __future__ import annotations

import math

from imagenet2017_tfds.errors import Imagenet2017Error


def grid(data_dir: str, config: str, split: str, count: int, output: str) -> int:
    try:
        import matplotlib
    except ImportError as e:
        raise Imagenet2017Error(
            f"imagenet2017-tfds show draws with matplotlib, which is not installed ({e}). "
            "Install it with: pip install 'imagenet2017-tfds[show]'"
        ) from e
    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.report import shards

    # Short readable names in label order: "tench" for "tench, Tinca tinca".
    names = [name.split(",")[0] for name in tasks.class_names(config)]
    examples = shards.first(data_dir, config, split, count)  # TFRecord or ArrayRecord
    cols = max(1, math.ceil(math.sqrt(len(examples))))
    rows = max(1, math.ceil(len(examples) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples, strict=False):
        with Image.open(io.BytesIO(ex["image"])) as im:
            image = np.asarray(im.convert("RGB"))
        height, width = image.shape[:2]
        ax.imshow(image)
        for (ymin, xmin, ymax, xmax), label in zip(
            ex["objects"]["bbox"], ex["objects"]["label"], strict=True
        ):
            ax.add_patch(
                plt.Rectangle(
                    (xmin * width, ymin * height),
                    (xmax - xmin) * width,
                    (ymax - ymin) * height,
                    fill=False,
                    color="yellow",
                    lw=1.5,
                )
            )
            ax.text(
                xmin * width,
                ymin * height,
                names[label],
                color="black",
                fontsize=7,
                backgroundcolor="yellow",
                va="bottom",
            )
        title = ex["file_name"].decode()
        if "label" in ex and ex["label"] >= 0:  # a config with an image label
            title += "\n" + names[ex["label"]]
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return len(examples)
