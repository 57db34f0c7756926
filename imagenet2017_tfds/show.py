"""`imagenet2017-tfds show`: a PNG grid of examples with their boxes and class names, for a
person to look at."""

from __future__ import annotations

import math


def grid(data_dir: str, config: str, split: str, count: int, output: str) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow_datasets as tfds

    from imagenet2017_tfds import classes

    lst = classes.for_config(config)
    ds = tfds.load(f"imagenet2017/{config}", split=split, data_dir=data_dir)
    examples = list(tfds.as_numpy(ds.take(count)))
    cols = max(1, math.ceil(math.sqrt(len(examples))))
    rows = max(1, math.ceil(len(examples) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples, strict=False):
        image = ex["image"]
        height, width = image.shape[:2]
        ax.imshow(image)
        for (ymin, xmin, ymax, xmax), label in zip(
            ex["objects"]["bbox"], ex["objects"]["label"], strict=True
        ):
            ax.add_patch(plt.Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                                       (ymax - ymin) * height, fill=False, color="yellow", lw=1.5))  # fmt: skip
            name = lst.names[lst.wnids[label]].split(",")[0]
            ax.text(xmin * width, ymin * height, name, color="black", fontsize=7,
                    backgroundcolor="yellow", va="bottom")  # fmt: skip
        title = ex["file_name"].decode()
        if config == "clsloc" and ex["label"] >= 0:
            title += "\n" + lst.names[lst.wnids[ex["label"]]].split(",")[0]
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return len(examples)
