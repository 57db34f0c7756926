"""`tfds build imagenet2017` run from the repository root finds the builder here (TFDS's
dataset-folder convention); the implementation lives in the installed package."""

from imagenet2017_tfds.dataset import builder


# The package registers `imagenet2017` (Imagenet2017): this alias must not register it twice.
class Builder(builder.Imagenet2017, skip_registration=True):
    """ImageNet ILSVRC2017 (see imagenet2017_tfds.dataset.builder)."""
