"""`tfds build imagenet2017` run from the repository root finds the builder here (TFDS's
dataset-folder convention); the implementation lives in the installed package."""

from imagenet2017_tfds import builder


class Builder(builder.Imagenet2017):
    """ImageNet ILSVRC2017 (see imagenet2017_tfds.builder)."""
